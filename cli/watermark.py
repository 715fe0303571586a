"""``provenance watermark``: embed and detect the invisible watermark alone."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cli._common import run_per_file
from provenance._internal.files import display
from provenance.errors import ExitCode
from provenance.watermarks import detect_media, parse_payload, read_key_file, watermark_file

_KEY_HELP = "File whose bytes are the watermark key (default: the public key anyone can detect)."


@click.group("watermark")
def command() -> None:
    """Embed or detect the invisible watermark (no C2PA manifest)."""


@command.command("embed")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path))
@click.option("--payload", required=True, help="64-bit payload as 16 hex digits.")
@click.option("--key-file", type=click.Path(path_type=Path), help=_KEY_HELP)
def embed(input_path: Path, output: Path, payload: str, key_file: Path | None) -> None:
    """Embed PAYLOAD invisibly in INPUT, writing OUTPUT in the same format.

    \b
    Images: in the pixels, metadata kept. Audio (WAV, FLAC, MP3, M4A, OGG):
    in the sound, at the input's rate, channels and bit rate.
    """
    watermark_file(input_path, output, parse_payload(payload), read_key_file(key_file))
    click.echo(f"watermarked {display(input_path)} -> {display(output)} [{payload.lower()}]", err=True)


@command.command("detect")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--key-file", type=click.Path(path_type=Path), help=_KEY_HELP)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file on stdout.")
def detect(files: tuple[Path, ...], key_file: Path | None, as_json: bool) -> None:
    """Look for a watermark in FILES (images or audio). Exit 0 if every file has one, 3 otherwise."""
    key = read_key_file(key_file)

    def check(path: Path) -> ExitCode:
        found, algorithm = detect_media(path, key)
        doc = {
            "file": display(path),
            "detected": found.detected,
            "payload": found.payload.hex() if found.payload else None,
            "algorithm": (found.algorithm or algorithm) if found.detected else algorithm,
            "p_value": found.p_value,
            "confidence": found.confidence,
            "bit_errors_corrected": found.bit_errors_corrected,
        }
        if as_json:
            click.echo(json.dumps(doc))
        elif found.detected:
            click.echo(
                f"{display(path)}: watermark {doc['payload']} (p-value {found.p_value:.1e}, "
                f"{found.bit_errors_corrected} bit errors corrected)"
            )
        else:
            click.echo(f"{display(path)}: no watermark found")
        return ExitCode.OK if found.detected else ExitCode.NO_CREDENTIALS

    run_per_file(files, check)
