"""Audio around the watermark: rates the mark is not defined for, OGG sidecars in folders,
re-stamping a stamped OGG, options that do not apply to audio, and long files in blocks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soxr
from click.testing import CliRunner

from cli.main import cli
from provenance._internal.audio import decode_audio, encode_audio

AUDIO = Path(__file__).resolve().parent / "fixtures" / "audio"
RATE = 16000


@pytest.fixture(scope="module")
def voice() -> np.ndarray:
    """6 s of a CMU ARCTIC speaker (mono, 16 kHz)."""
    name = "speech_cmu-arctic_aew_a0001-3.ogg"
    clip = decode_audio((AUDIO / name).read_bytes(), name)
    assert clip.sample_rate == RATE
    return clip.samples[: 6 * RATE]


def _stamp_args(identity_dir: Path, db: Path) -> list[str]:
    return ["--identity", str(identity_dir), "--store", str(db), "--model", "voice-clone-1", "--jobs", "1"]


@pytest.mark.parametrize("rate", [4000, 192000])
def test_a_rate_outside_the_marks_range_is_not_checked_rather_than_none_found(
    tmp_path: Path, voice: np.ndarray, rate: int
) -> None:
    samples = soxr.resample(voice, RATE, rate).astype(np.float32)
    path = tmp_path / f"at-{rate}.wav"
    path.write_bytes(encode_audio(samples, rate, "wav"))
    runner = CliRunner()
    found = runner.invoke(cli, ["watermark", "detect", str(path)])
    assert found.exit_code == 4
    assert found.stdout == ""
    assert found.stderr.startswith("error: ") and "watermark not checked" in found.stderr
    assert f"{rate:,} Hz" in found.stderr and "8,000-96,000 Hz" in found.stderr
    assert "no watermark found" not in found.stderr
    checked = runner.invoke(cli, ["verify", str(path), "--json"])
    assert checked.exit_code == 3, checked.stderr
    doc = json.loads(checked.stdout)
    assert doc["state"] == "none" and doc["watermark"] is None
    assert any("watermark not checked" in w and f"{rate:,} Hz" in w for w in doc["warnings"])
    text = runner.invoke(cli, ["verify", str(path)])
    assert "watermark not checked" in text.stdout and f"{rate:,} Hz" in text.stdout
    # In range, the same clip is looked at and nothing is found: that is "none found".
    inside = tmp_path / "at-16000.wav"
    inside.write_bytes(encode_audio(voice, RATE, "wav"))
    plain = runner.invoke(cli, ["watermark", "detect", str(inside)])
    assert plain.exit_code == 3 and plain.stdout.strip().endswith("no watermark found")


def test_verify_folder_treats_an_ogg_sidecar_as_part_of_its_ogg(
    identity_dir: Path, tmp_path: Path, voice: np.ndarray
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "message.ogg").write_bytes(encode_audio(voice, RATE, "ogg", bit_rate=64000))
    runner = CliRunner()
    out, db = tmp_path / "out", tmp_path / "m.db"
    made = runner.invoke(cli, ["stamp", str(folder), "-o", str(out), *_stamp_args(identity_dir, db)])
    assert made.exit_code == 0, made.stderr
    written = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert written == ["message.c2pa", "message.ogg"]
    (out / "notes.txt").write_text("not media")
    (out / "orphan.c2pa").write_bytes((out / "message.c2pa").read_bytes())  # no OGG of its own
    result = runner.invoke(cli, ["verify", str(out), "--store", str(db)])
    assert result.exit_code == 0, result.stderr
    assert "message.ogg: VALID" in result.stdout
    assert "message.c2pa" not in result.stdout and "message.c2pa" not in result.stderr
    skipped = sorted(line for line in result.stderr.splitlines() if line.startswith("skipped"))
    assert [Path(line.split()[1].rstrip(":")).name for line in skipped] == ["notes.txt", "orphan.c2pa"]
    assert result.stdout.rstrip().endswith("1 file: 1 valid (unknown signer), 2 skipped (not a media file)")
