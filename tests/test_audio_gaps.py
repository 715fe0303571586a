"""Audio around the watermark: rates the mark is not defined for, OGG sidecars in folders,
re-stamping a stamped OGG, options that do not apply to audio, and long files in blocks."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soxr
from click.testing import CliRunner

import watermark
import watermark.audio
from cli.main import cli
from manifests import GenerationInfo
from provenance._internal import audio_likeness, audio_stream
from provenance._internal.audio import decode_audio, encode_audio
from provenance.errors import UsageError
from provenance.keys import Identity
from provenance.stamp import stamp, stamp_facts
from provenance.store import open_store
from provenance.verify import State, verify_bytes

from .conftest import PUBLIC_JPEGS, file_size_limit

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


def _program(seconds: float, rate: int) -> np.ndarray:
    """A long stereo recording at ``rate``: the fixture speech, music, trumpet and whale song
    one after the other, round and round (real sound: the mark is tuned on it)."""
    parts = []
    for path in sorted(AUDIO.glob("*.ogg")):
        clip = decode_audio(path.read_bytes(), path.name)
        both = clip.samples if clip.channels == 2 else np.repeat(clip.samples, 2, axis=1)
        parts.append(soxr.resample(both, clip.sample_rate, rate).astype(np.float32))
    return np.resize(np.concatenate(parts), (int(seconds * rate), 2))


PAYLOAD = bytes.fromhex("0123456789abcdef")


def test_a_three_minute_recording_marked_in_blocks_reads_like_one_marked_whole() -> None:
    rate = 44100  # 2.048 s is not a whole number of samples here: segments start every 5 blocks
    clip = _program(180, rate)
    whole = watermark.audio.embed(clip, rate, PAYLOAD)
    pieces = (clip[i : i + 70001] for i in range(0, len(clip), 70001))  # odd sizes, as decoders give
    streamed = np.concatenate(list(watermark.audio.embed_stream(pieces, rate, PAYLOAD)))
    assert streamed.shape == clip.shape and streamed.dtype == np.float32
    mark, difference = whole - clip, streamed - whole
    # The same mark up to the seams: the two differ far below the mark itself.
    assert 10 * np.log10(np.sum(mark**2) / np.sum(difference**2)) > 20
    # Every seam (and the stretches between) reads from a 5-second excerpt, as in the whole one.
    seams = [watermark_seam(k, rate) for k in range(1, 8)]
    for centre in [*seams, 15 * rate, 95 * rate, 170 * rate]:
        excerpt = slice(centre - int(2.5 * rate), centre + int(2.5 * rate))
        assert watermark.audio.detect(streamed[excerpt], rate).payload == PAYLOAD
        assert watermark.audio.detect(whole[excerpt], rate).payload == PAYLOAD
    # ... and the streamed copy sounds like the whole one to the likeness check.
    reference = audio_likeness.reference(whole, rate)
    assert audio_likeness.similarity(reference, streamed[60 * rate : 70 * rate], rate) > 0.9
    # A recording shorter than two segments is marked in one piece, exactly as embed does.
    short = clip[: 30 * rate]
    alone = np.concatenate(list(watermark.audio.embed_stream([short[:1000], short[1000:]], rate, PAYLOAD)))
    assert np.array_equal(alone, watermark.audio.embed(short, rate, PAYLOAD))
    with pytest.raises(watermark.audio.AudioTooShortError):
        list(watermark.audio.embed_stream([clip[:1000]], rate, PAYLOAD))


def watermark_seam(k: int, rate: int) -> int:
    from watermark.audio._stream import SEGMENT_BLOCKS, block_boundary

    return block_boundary(k * SEGMENT_BLOCKS, rate)


def test_the_fingerprint_made_in_blocks_is_the_one_made_whole() -> None:
    clip = _program(40, 22050)
    maker = audio_likeness.Fingerprinter(22050)
    for start in range(0, len(clip), 12345):
        maker.add(clip[start : start + 12345])
    assert maker.finish() == audio_likeness.reference(clip, 22050)


def test_stamping_a_long_file_goes_in_blocks_and_verifies(
    identity: Identity, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rate = 22050
    clip = _program(45, rate)  # two segments, one seam at 20.48 s
    source = tmp_path / "long.flac"
    source.write_bytes(encode_audio(clip, rate, "flac"))
    decoded: list[int] = []
    real = audio_stream.AudioSource.blocks

    def counted(self: audio_stream.AudioSource) -> Iterator[np.ndarray]:
        for block in real(self):
            decoded.append(len(block))
            yield block

    monkeypatch.setattr(audio_stream.AudioSource, "blocks", counted)
    store = open_store(tmp_path / "m.db")
    info = GenerationInfo(generator="tts")
    result = stamp(source, identity, info, store=store, output=tmp_path / "out.flac")
    # Never a block longer than BLOCK_SECONDS went through the decoder: nothing read whole.
    assert decoded and max(decoded) <= audio_stream.BLOCK_SECONDS * rate
    assert result.held is None and result.data == (tmp_path / "out.flac").read_bytes()
    back = decode_audio(result.data, "out.flac")
    assert back.container == "flac" and back.samples.shape == clip.shape
    for start in (0, 18, 38):
        excerpt = back.samples[start * rate : (start + 6) * rate]
        assert watermark.audio.detect(excerpt, rate).payload == result.payload
    entry = store.get_by_payload(result.payload)
    assert entry is not None and entry.fingerprint_audio == audio_likeness.reference(back.samples, rate)
    assert entry.source_sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert entry.asset_sha256 == hashlib.sha256(result.data).hexdigest()
    assert verify_bytes(result.data, store=store).state is State.VALID
    # Stripped and re-encoded as a 5 s MP3 excerpt across a seam: recovered.
    cut = encode_audio(back.samples[18 * rate : 23 * rate], rate, "mp3", bit_rate=128000)
    recovered = verify_bytes(cut, store=store, name="cut.mp3")
    assert recovered.recovered and recovered.state is State.VALID


def test_stamp_options_that_do_not_apply_to_audio_are_refused_and_bit_rate_is_honoured(
    identity: Identity, tmp_path: Path, voice: np.ndarray
) -> None:
    store = open_store(tmp_path / "m.db")
    info = GenerationInfo(generator="tts")
    wav, mp3 = encode_audio(voice, RATE, "wav"), encode_audio(voice, RATE, "mp3", bit_rate=128000)
    for data, options, words in [
        (wav, {"quality": 80}, "quality applies to JPEG and WebP"),
        (mp3, {"quality": 80}, "bit_rate="),
        (wav, {"format": "PNG"}, "its own format (WAV), not 'PNG'"),
        (mp3, {"format": "ogg"}, "its own format (MP3)"),
        (wav, {"bit_rate": 96000}, "lossless and has no bit rate"),
        (mp3, {"bit_rate": 2000}, "between 8 and 512 kbit/s"),
    ]:
        with pytest.raises(UsageError, match=re.escape(words)):
            stamp(data, identity, info, store=store, output=tmp_path / "x", **options)  # type: ignore[arg-type]
        assert not (tmp_path / "x").exists()
    assert store.count() == 0
    with pytest.raises(UsageError, match="bit_rate applies to compressed audio"):
        stamp(encode_png(), identity, info, store=store, bit_rate=96000)
    # The input's own format named is fine; a bit rate for MP3 is used.
    kept = stamp(mp3, identity, info, store=store, format="mp3", bit_rate=160000)
    back = decode_audio(kept.data, "kept.mp3")
    assert back.container == "mp3" and back.bit_rate == 160000
    assert watermark.audio.detect(back.samples, RATE).payload == kept.payload
    entry = store.get_by_payload(kept.payload)
    assert entry is not None and entry.facts_sha256 == stamp_facts(info, watermark.DEFAULT_KEY, None, 160000)


def encode_png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.effect_noise((256, 256), 40).convert("RGB").save(out, "PNG")
    return out.getvalue()


def test_cli_quality_is_for_pictures_and_bitrate_for_compressed_audio(
    identity_dir: Path, tmp_path: Path, voice: np.ndarray
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes((PUBLIC_JPEGS / "adobe-20220124-A.jpg").read_bytes())
    (folder / "voice.wav").write_bytes(encode_audio(voice, RATE, "wav"))
    (folder / "voice.mp3").write_bytes(encode_audio(voice, RATE, "mp3", bit_rate=128000))
    out, db = tmp_path / "out", tmp_path / "m.db"
    runner = CliRunner()
    args = ["stamp", str(folder), "-o", str(out), *_stamp_args(identity_dir, db), "--quality", "70"]
    first = runner.invoke(cli, [*args, "--bitrate", "96", "--json"])
    assert first.exit_code == 0, first.stderr
    assert json.loads(first.stdout)["counts"]["stamped"] == 3
    assert decode_audio((out / "voice.mp3").read_bytes(), "voice.mp3").bit_rate == 96000
    assert decode_audio((out / "voice.wav").read_bytes(), "voice.wav").subtype == "PCM_16"
    # The same options again: nothing to do (audio is not re-stamped for --quality, nor WAV for --bitrate).
    again = runner.invoke(cli, [*args, "--bitrate", "96"])
    assert again.exit_code == 0, again.stderr
    assert again.stderr.count("skipped:") == 3
    # Another bit rate re-stamps the MP3 alone.
    other = runner.invoke(cli, [*args, "--bitrate", "128"])
    assert other.exit_code == 0, other.stderr
    assert other.stderr.count("skipped:") == 2 and "stamped: " in other.stderr and "voice.mp3" in other.stderr
    assert decode_audio((out / "voice.mp3").read_bytes(), "voice.mp3").bit_rate == 128000
    bad = runner.invoke(cli, [*args, "--bitrate", "4"])
    assert bad.exit_code == 2 and bad.stdout == "" and "--bitrate" in bad.stderr
    shown = runner.invoke(cli, ["stamp", "--help"])
    words = " ".join(shown.stdout.split())
    assert "Audio is not affected (see --bitrate)" in words and "WAV and FLAC are lossless" in words


def test_restamping_a_stamped_ogg_chains_its_sidecar_credentials_as_the_parent(
    identity_dir: Path, tmp_path: Path, voice: np.ndarray
) -> None:
    from provenance.verify import verify_file

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "message.ogg").write_bytes(encode_audio(voice, RATE, "ogg", bit_rate=64000))
    runner = CliRunner()
    db = tmp_path / "m.db"
    one, two = tmp_path / "one", tmp_path / "two"
    first = runner.invoke(cli, ["stamp", str(folder), "-o", str(one), *_stamp_args(identity_dir, db)])
    assert first.exit_code == 0, first.stderr
    before = verify_file(tmp_path / "one" / "message.ogg", watermark_key=None)
    assert before.state is State.VALID and before.active_manifest is not None
    old_label = before.active_manifest.label
    # The stamped OGG (with its message.c2pa) stamped again, by another tool run.
    again = runner.invoke(cli, ["stamp", str(one), "-o", str(two), *_stamp_args(identity_dir, db), "--json"])
    assert again.exit_code == 0, again.stderr
    outcome = next(f for f in json.loads(again.stdout)["files"] if f["input"].endswith("message.ogg"))
    assert outcome["status"] == "stamped"
    after = verify_file(tmp_path / "two" / "message.ogg", store=open_store(db))
    assert after.state is State.VALID, after.failures
    assert after.active_manifest is not None and after.active_manifest.label != old_label
    parents = [i for i in after.active_manifest.ingredients if i.relationship == "parentOf"]
    assert [p.label for p in parents] == [old_label]  # the old credentials as the parent ingredient
    assert parents[0].state is State.VALID and parents[0].model == "voice-clone-1"
    # The mark was kept (not embedded twice) and the store's entry now holds the new manifest.
    assert after.watermark is not None and after.watermark.payload == outcome["identifier"]
    entry = open_store(db).get_by_payload(bytes.fromhex(outcome["identifier"]))
    assert entry is not None and entry.manifest_label == after.active_manifest.label


def test_an_audio_output_in_a_missing_folder_is_refused_before_the_work(
    identity: Identity, tmp_path: Path, voice: np.ndarray
) -> None:
    from provenance.errors import OutputError

    store = open_store(tmp_path / "m.db")
    with pytest.raises(OutputError, match="does not exist"):
        stamp(
            encode_audio(voice, RATE, "wav"),
            identity,
            GenerationInfo(generator="tts"),
            store=store,
            output=tmp_path / "missing" / "out.wav",
        )
    assert store.count() == 0 and not (tmp_path / "missing").exists()


@pytest.mark.parametrize("signed", [True, False])
def test_an_ogg_output_whose_sidecar_is_the_inputs_is_refused(
    identity: Identity, tmp_path: Path, voice: np.ndarray, signed: bool
) -> None:
    from provenance.errors import OutputError

    store = open_store(tmp_path / "m.db")
    info = GenerationInfo(generator="tts")
    source = tmp_path / "note.ogg"
    source.write_bytes(encode_audio(voice, RATE, "ogg", bit_rate=64000))
    if signed:  # a stamped OGG with its note.c2pa
        (tmp_path / "first").mkdir()
        stamp(source, identity, info, store=store, output=tmp_path / "first" / "note.ogg")
        source = tmp_path / "first" / "note.ogg"
    before = {p.name: p.read_bytes() for p in source.parent.iterdir()}
    # note.ogg -> note.opus beside it: both manifests would be note.c2pa.
    with pytest.raises(OutputError, match="stamping never modifies inputs"):
        stamp(source, identity, info, store=store, output=source.with_suffix(".opus"))
    assert {p.name: p.read_bytes() for p in source.parent.iterdir()} == before
    assert store.count() == (1 if signed else 0)


@pytest.mark.parametrize("kind", ["wav", "flac"])
def test_a_full_disk_while_stamping_audio_is_an_output_error_and_quiet(
    identity: Identity, tmp_path: Path, voice: np.ndarray, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from provenance.errors import OutputError

    unraisable: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    store = open_store(tmp_path / "m.db")
    source = tmp_path / f"voice.{kind}"
    source.write_bytes(encode_audio(np.tile(voice, (4, 1)), RATE, kind))
    out = tmp_path / "out" / source.name
    out.parent.mkdir()
    with file_size_limit(64 * 1024), pytest.raises(OutputError, match="cannot write"):
        stamp(source, identity, GenerationInfo(generator="tts"), store=store, output=out)
    # Was a bare OSError, with libsndfile's callbacks printing tracebacks of it on the way.
    assert unraisable == []
    assert list(out.parent.iterdir()) == [] and store.count() == 0


def test_a_truncated_ogg_is_refused_like_a_truncated_mp3(
    identity: Identity, tmp_path: Path, voice: np.ndarray
) -> None:
    from provenance.errors import CorruptInputError

    whole = encode_audio(voice, RATE, "ogg", bit_rate=64000)
    cut = tmp_path / "cut.ogg"
    cut.write_bytes(whole[: len(whole) * 2 // 3])  # FFmpeg decoded it up to the cut, silently
    store = open_store(tmp_path / "m.db")
    with pytest.raises(CorruptInputError, match="truncated or corrupt"):
        stamp(cut, identity, GenerationInfo(generator="tts"), store=store, output=tmp_path / "out.ogg")
    assert not (tmp_path / "out.ogg").exists() and not (tmp_path / "out.c2pa").exists()
    assert store.count() == 0
    found = CliRunner().invoke(cli, ["watermark", "detect", str(cut)])
    assert found.exit_code == 4 and found.stderr.count("\n") == 1 and "Ogg page" in found.stderr
    whole_file = tmp_path / "whole.ogg"
    whole_file.write_bytes(whole)
    assert CliRunner().invoke(cli, ["watermark", "detect", str(whole_file)]).exit_code == 3


def test_a_truncated_flac_is_refused_by_verify_detect_and_sign(
    identity_dir: Path, tmp_path: Path, voice: np.ndarray
) -> None:
    # 150 s, cut after 100: the first minute (all verify and detect decode) is all there.
    whole = encode_audio(np.tile(voice, (25, 1)), RATE, "flac")
    cut = tmp_path / "cut.flac"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    runner = CliRunner()
    for args in (
        ["verify", str(cut)],
        ["watermark", "detect", str(cut)],
        ["sign", str(cut), "-o", str(tmp_path / "signed.flac"), "--identity", str(identity_dir)],
    ):
        result = runner.invoke(cli, args)
        # Was: "no credentials" / "no watermark found" (exit 3), and signed as if whole (exit 0).
        assert result.exit_code == 4, (args, result.stdout, result.stderr)
        assert result.stderr.count("\n") == 1 and "truncated or corrupt" in result.stderr
    assert not (tmp_path / "signed.flac").exists()
    whole_file = tmp_path / "whole.flac"
    whole_file.write_bytes(whole)
    assert runner.invoke(cli, ["verify", str(whole_file)]).exit_code == 3


class _CtrlCWhileWriting(io.BytesIO):
    """A file that receives a Ctrl-C (SIGINT) while libsndfile writes into it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, data: object) -> int:
        self.writes += 1
        if self.writes == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return super().write(data)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["wav", "flac"])
def test_ctrl_c_inside_a_libsndfile_callback_is_not_lost(
    voice: np.ndarray, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    unraisable: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    dest = _CtrlCWhileWriting()
    # Was: printed as "Exception ignored from cffi callback" and the encoding carried on.
    with pytest.raises(KeyboardInterrupt), audio_stream.AudioWriter(dest, RATE, 1, kind) as writer:
        for start in range(0, len(voice), 4000):
            writer.write(voice[start : start + 4000])
    assert unraisable == []
