"""The HTML answer shared by the verify page and `verify --html`: content, escaping, the CLI."""

from __future__ import annotations

import base64
import json
import os
import re
from html import escape
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from cli.main import cli
from manifests import GenerationInfo
from provenance.keys import Identity
from provenance.report import collect, collect_file, render_document, render_fragment
from provenance.report._words import explain
from provenance.sign import sign_bytes
from provenance.store import open_store
from provenance.verify import State, VerificationResult, to_text, verify_bytes, verify_file

from .conftest import PUBLIC_JPEGS, encode, photo

HOSTILE_TITLE = '<img src=x onerror="alert(1)">photo.jpg'
HOSTILE_TOOL = "</p><script>alert('tool')</script>"
HOSTILE_MODEL = 'm"><svg onload=alert(2)>'


def hostile_file(identity: Identity) -> bytes:
    """A correctly signed file whose manifest strings try to inject markup."""
    info = GenerationInfo(generator=HOSTILE_TOOL, model=HOSTILE_MODEL)
    return sign_bytes(encode(photo("camera"), "JPEG"), identity, info, title=HOSTILE_TITLE).data


def _download(html: str) -> dict[str, object]:
    match = re.search(r'href="data:application/json;base64,([A-Za-z0-9+/=]+)"', html)
    assert match, "no JSON download link"
    loaded: dict[str, object] = json.loads(base64.b64decode(match.group(1)))
    return loaded


def test_altered_file_report_has_the_verdict_thumbnails_and_the_json(tmp_path: Path) -> None:
    path = PUBLIC_JPEGS / "adobe-20220124-E-dat-CA.jpg"
    result = verify_file(path)
    evidence = collect_file(path, result)
    assert len(evidence.chain_thumbnails) == len(result.chain) == 2
    assert all(t is not None and t.startswith(b"\xff\xd8") for t in evidence.chain_thumbnails)
    html = render_fragment(evidence)
    assert "Altered: Content Credentials do not match" in html
    assert html.count("data:image/jpeg;base64,") == 3  # the file, then each node of its chain
    assert "assertion.dataHash.mismatch" in html  # raw status codes for experts
    assert _download(html) == {"file": str(path), **result.to_dict()}


def test_deep_chain_gets_one_thumbnail_per_node_in_walk_order() -> None:
    path = PUBLIC_JPEGS / "adobe-20220124-CACAICAICICA.jpg"
    result = verify_file(path)
    evidence = collect_file(path, result)
    assert len(result.chain) == 8
    assert all(t is not None for t in evidence.chain_thumbnails)
    html = render_fragment(evidence)
    titles = re.findall(r"<h4>([^<]+)</h4>", html)
    assert titles == [n.title for n in result.chain]


def test_manifest_strings_are_escaped(identity: Identity) -> None:
    data = hostile_file(identity)
    result = verify_bytes(data, name="x.jpg")
    assert result.active_manifest is not None and result.active_manifest.title == HOSTILE_TITLE
    html = render_document([collect('"><script>alert(3)</script>.jpg', data, result)])
    assert "<script" not in html.lower()
    assert "<img src=x" not in html and "<svg" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;photo.jpg" in html
    assert "&lt;/p&gt;&lt;script&gt;alert(&#x27;tool&#x27;)&lt;/script&gt;" in html
    # And nothing is fetched from anywhere: the report is one self-contained file.
    assert not re.search(r'(src|href)="(?!data:)', html)


@pytest.mark.parametrize(
    ("state", "recovered", "kind"),
    [
        (State.TRUSTED, False, "trusted"),
        (State.VALID, False, "valid"),
        (State.VALID, True, "recovered"),
        (State.INVALID, False, "invalid"),
        (State.NONE, False, "none"),
    ],
)
def test_every_verdict_has_its_own_words(state: State, recovered: bool, kind: str) -> None:
    words = explain(VerificationResult(state, "sentence", "image/png", recovered=recovered))
    assert words.kind == kind
    if state is State.VALID and not recovered:
        assert "unknown" in words.headline and "not a sign of tampering" in words.lead
    if state is State.NONE:
        assert "genuine" in words.lead and "not" in words.lead  # never reads as authentic


def test_credentials_stored_elsewhere_are_not_called_none() -> None:
    # Same words as the CLI: a file pointing to remote credentials is signed; they
    # were only not fetched.
    url = "https://example.com/manifest.c2pa"
    result = VerificationResult(
        State.NONE,
        f"Its Content Credentials are stored remotely at {url}; ...",
        "image/jpeg",
        remote_manifest_url=url,
    )
    words = explain(result)
    assert words.kind == "none"
    assert words.headline == "Content Credentials not checked"
    assert "says nothing verifiable" not in words.lead and "not the same as having none" in words.lead
    assert words.signer.startswith("Not checked") and url in words.details[0]


def test_recovered_report_names_the_original_and_its_thumbnail(identity: Identity, tmp_path: Path) -> None:
    from provenance.stamp import stamp

    with open_store(tmp_path / "m.db") as store:
        stamped = stamp(
            encode(photo("coffee"), "JPEG", quality=90), identity, GenerationInfo(generator="g"), store=store
        )
        stripped = _reencode(stamped.data)
        result = verify_bytes(stripped, store=store)
        assert result.recovered and result.state is State.VALID
        evidence = collect("shared.jpg", stripped, result, store=store)
    assert evidence.chain_thumbnails[0] is not None  # from the recorded manifest, not the file
    html = render_fragment(evidence)
    assert "Content Credentials recovered from the invisible watermark" in html
    assert "The original, as recorded in the manifest store" in html


def _reencode(data: bytes) -> bytes:
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    smaller = image.resize((image.width * 3 // 4, image.height * 3 // 4), Image.Resampling.BICUBIC)
    return encode(smaller, "JPEG", quality=80)


def test_cli_html_report_file_and_stdout(tmp_path: Path) -> None:
    runner = CliRunner()
    source = PUBLIC_JPEGS / "adobe-20220124-XCA.jpg"
    out = tmp_path / "report.html"
    result = runner.invoke(cli, ["verify", str(source), "--html", str(out)])
    assert result.exit_code == 1  # invalid credentials, as without --html
    assert result.stdout.startswith(f"{source}: INVALID")
    assert result.stderr == f"wrote the report to {out}\n"
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "Altered: Content Credentials do not match" in page
    assert not list(tmp_path.glob(".report.html.*"))  # written atomically, no temporary left

    to_stdout = runner.invoke(cli, ["verify", str(source), "--html", "-"])
    assert to_stdout.exit_code == 1
    assert to_stdout.stdout.startswith("<!doctype html>") and to_stdout.stdout.rstrip().endswith("</html>")
    assert to_stdout.stderr == ""


def test_cli_html_usage_and_output_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    source = str(PUBLIC_JPEGS / "adobe-20220124-CA.jpg")
    both = runner.invoke(cli, ["verify", source, "--json", "--html", "-"])
    assert both.exit_code == 2 and both.stdout == ""
    assert both.stderr.startswith("error: --html - and --json both write to stdout")
    missing = runner.invoke(cli, ["verify", source, "--html", str(tmp_path / "no" / "r.html")])
    assert missing.exit_code == 4 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr


def test_cli_html_with_json_keeps_json_on_stdout(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    files = [str(PUBLIC_JPEGS / "adobe-20220124-CA.jpg"), str(PUBLIC_JPEGS / "adobe-20220124-A.jpg")]
    result = CliRunner().invoke(cli, ["verify", *files, "--json", "--html", str(out)])
    assert result.exit_code == 3  # the worst of valid and none
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [d["state"] for d in docs] == ["valid", "none"]
    page = out.read_text(encoding="utf-8")
    assert page.count('<article class="cr-report') == 2 and "No Content Credentials" in page


def test_sound_file_report_checks_the_audio_watermark(identity: Identity) -> None:
    from .conftest import MEDIA

    signed = sign_bytes((MEDIA / "tone.mp3").read_bytes(), identity, GenerationInfo(generator="voice-app"))
    result = verify_bytes(signed.data, name="call.mp3")
    html = render_fragment(collect("call.mp3", signed.data, result))
    assert "Content Credentials intact, signer unknown" in html
    # Sound is checked for the audio watermark too (this signed tone carries none).
    assert result.watermark is not None and not result.watermark.detected
    assert "Most files carry no invisible watermark; that alone means nothing." in html
    assert '<div class="cr-thumb cr-nothumb" aria-hidden="true">audio (MPEG)</div>' in html


def test_an_oversized_manifest_thumbnail_is_not_decoded(identity: Identity) -> None:
    from provenance.report import _thumbnails

    # A tiny PNG that declares 8000x8000 pixels: only its header may be read.
    huge = encode(Image.new("L", (8000, 8000)), "PNG")
    assert len(huge) < 200_000
    assert _thumbnails._small(huge, "thumbnail") is None
    assert _thumbnails._small(encode(photo("camera"), "PNG"), "thumbnail") is not None


def test_an_edit_of_an_ai_image_says_so_in_the_clis_words(identity: Identity) -> None:
    from manifests import Action, EditInfo

    generated = sign_bytes(
        encode(photo("coffee"), "JPEG"),
        identity,
        GenerationInfo(generator="gen", model="m-1"),
        title="gen.jpg",
    )
    edited = sign_bytes(
        encode(photo("coffee").resize((200, 133)), "JPEG"),
        identity,
        edit=EditInfo((Action("c2pa.resized"),)),
        parent=generated.data,
    )
    result = verify_bytes(edited.data)
    words = explain(result)
    assert words.ai == (
        "Yes, its credentials say it was generated by a trained AI model (tool: gen; model: m-1), "
        "as recorded in an earlier step of its history."
    )
    # The page and the report say what the CLI says.
    cli_text = to_text("edited.jpg", result)
    assert words.ai in cli_text and words.altered in cli_text and words.signer in cli_text
    html = render_fragment(collect("edited.jpg", edited.data, result))
    assert escape(words.ai) in html and escape(words.altered) in html
    assert "Resized" in html and "Created (generated by a trained AI model)" in html


def test_a_file_name_that_is_not_utf8_is_shown_escaped(tmp_path: Path) -> None:
    # `verify --html` of a folder holding such a name was an internal error (exit 70).
    path = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9.jpg"))
    path.write_bytes((PUBLIC_JPEGS / "adobe-20220124-A.jpg").read_bytes())
    result = CliRunner().invoke(cli, ["verify", str(tmp_path), "--html", "-"])
    assert result.exit_code == 3, result.stderr  # no credentials: a verdict, not an internal error
    assert "caf\\xe9.jpg" in result.stdout
    result = CliRunner().invoke(cli, ["verify", str(path), "--html", str(tmp_path / "r.html"), "--json"])
    assert result.exit_code == 3, result.stderr  # no credentials: a verdict, not an internal error
    assert "caf\\xe9.jpg" in (tmp_path / "r.html").read_text(encoding="utf-8")
