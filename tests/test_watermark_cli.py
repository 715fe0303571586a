"""``provenance watermark embed/detect`` on real photographs."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from cli.main import cli

from .conftest import encode, photo


def test_embed_then_detect_keeps_metadata(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    src = tmp_path / "in.jpg"
    src.write_bytes(encode(photo("coffee"), "JPEG", quality=90, exif=exif.tobytes()))
    out = tmp_path / "out.jpg"
    runner = CliRunner()
    made = runner.invoke(
        cli, ["watermark", "embed", str(src), "-o", str(out), "--payload", "00FF00FF00FF00FF"]
    )
    assert made.exit_code == 0, made.stderr
    assert Image.open(out).getexif()[0x010F] == "TestCam"
    found = runner.invoke(cli, ["watermark", "detect", str(out), str(src), "--json"])
    docs = [json.loads(line) for line in found.stdout.splitlines()]
    assert docs[0]["detected"] and docs[0]["payload"] == "00ff00ff00ff00ff"
    assert docs[1]["detected"] is False and docs[1]["payload"] is None
    assert found.exit_code == 3  # not every file carries a watermark


def test_private_key_file(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    src.write_bytes(encode(photo("astronaut"), "PNG"))
    key = tmp_path / "org.key"
    key.write_bytes(b"our organisation's private watermark key")
    runner = CliRunner()
    args = ["watermark", "embed", str(src), "-o", str(tmp_path / "o.png"), "--payload", "1" * 16]
    assert runner.invoke(cli, [*args, "--key-file", str(key)]).exit_code == 0
    with_key = runner.invoke(cli, ["watermark", "detect", str(tmp_path / "o.png"), "--key-file", str(key)])
    assert with_key.exit_code == 0 and "1111111111111111" in with_key.stdout
    public = runner.invoke(cli, ["watermark", "detect", str(tmp_path / "o.png")])
    assert public.exit_code == 3 and "no watermark found" in public.stdout


def test_bad_payload_and_small_image(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    src.write_bytes(encode(photo("astronaut", (100, 100)), "PNG"))
    runner = CliRunner()
    bad = runner.invoke(
        cli, ["watermark", "embed", str(src), "-o", str(tmp_path / "o.png"), "--payload", "xyz"]
    )
    assert bad.exit_code == 2 and "hexadecimal" in bad.stderr
    small = runner.invoke(
        cli, ["watermark", "embed", str(src), "-o", str(tmp_path / "o.png"), "--payload", "0" * 16]
    )
    assert small.exit_code == 4 and "at least" in small.stderr
    assert not (tmp_path / "o.png").exists()
