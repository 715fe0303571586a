"""Every command the README's command-line section shows runs as written on a fresh clone.

The block is run in-process (CliRunner for ``provenance``, ``exec`` for the
``python3 -c`` one-liners, one ``VAR=$(a | b)`` substitution) because a shell
starting a Python process per line takes most of a minute.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli

from .conftest import ROOT


def _command_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("Run from the root of a clone") :]
    start = section.index("```sh") + len("```sh")
    body = section[start : section.index("```", start)].replace("\\\n", "")
    return [line for line in body.splitlines() if line.strip()]


def _run(words: list[str], env: dict[str, str], stdin: str = "") -> tuple[int, str]:
    words = [re.sub(r"\$(\w+)", lambda m: env[m.group(1)], w) for w in words]
    if words[0] == "provenance":
        result = CliRunner().invoke(cli, words[1:])
        return result.exit_code, result.stdout + result.stderr
    assert words[:2] == ["python3", "-c"], f"the README shows a command this test cannot run: {words}"
    out = io.StringIO()
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out):
            exec(words[2], {})  # the README's own one-liner
    finally:
        sys.stdin = saved
    return 0, out.getvalue()


def test_readme_commands_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "examples" / "media", clone / "examples" / "media")
    monkeypatch.chdir(clone)
    monkeypatch.setenv("PROVENANCE_HOME", str(tmp_path / "home"))
    env: dict[str, str] = {}
    outputs = []
    for line in _command_block():
        assignment = re.fullmatch(r"(\w+)=\$\((.*)\)\s*", line)
        if assignment:
            first, second = assignment.group(2).split(" | ")
            code, piped = _run(shlex.split(first), env)
            assert code == 0, piped
            code, value = _run(shlex.split(second), env, stdin=piped)
            env[assignment.group(1)] = value.strip()
            continue
        words = shlex.split(line, comments=True)
        target = None
        if ">" in words:  # one stdout redirection, as the shell would do it
            words, target = words[: words.index(">")], words[words.index(">") + 1]
        code, output = _run(words, env)
        assert code == 0, f"{line}\n{output}"
        if target is not None:
            Path(target).write_text(output)
        outputs.append(output)
    text = "\n".join(outputs)
    assert "Made with AI?  Yes" in text
    assert "RECOVERED FROM WATERMARK" in text
    assert "2 files: 2 valid (unknown signer)" in text
    assert '"state": "trusted"' in text  # the --trust-anchors example found the root
    assert Path(env["ROOT_CA"]).is_file() and str(tmp_path / "home") in env["ROOT_CA"]
    assert (clone / "cropped.png").exists() and (clone / "crop.png").exists()
    assert (clone / "signer.csr").read_text().startswith("-----BEGIN CERTIFICATE REQUEST-----")
    assert len(list((clone / "manifests").glob("*.c2pa"))) == 2


def test_trust_anchor_example_does_not_hard_code_a_home() -> None:
    block = "\n".join(_command_block())
    assert "~/.config" not in block and ".provenance-home" not in block
    assert "root_ca" in block
