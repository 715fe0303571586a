"""The verify page and the HTML report in a real browser: Debian's headless Chromium via Playwright.

Needs the ``chromium`` Debian package (``apt-get install -y --no-install-recommends
chromium``); without it these tests skip, except under ``CI=true`` where they fail.
Full-page screenshots of every state go to ``$PROVENANCE_SCREENSHOTS`` when it is set
(``make screenshots`` sets it to ``docs/screenshots``); otherwise none are taken.
"""

from __future__ import annotations

import io
import json
import os
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from manifests import GenerationInfo
from provenance.keys import Identity
from provenance.report import collect, write_report
from provenance.stamp import stamp
from provenance.store import open_store
from provenance.trust import TrustPolicy
from provenance.verify import verify_bytes, verify_file
from tests._service import Service, running_service

from .conftest import PUBLIC_JPEGS, encode, photo
from .test_report import HOSTILE_TITLE, hostile_file

CHROMIUM = Path("/usr/bin/chromium")
INSTALL = "apt-get update && apt-get install -y --no-install-recommends chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 844}
TEXTS = [
    "#result h2",
    "#result .cr-file",
    "#result .cr-lead",
    "#result dt",
    "#result dd",
    "#result .cr-rel",
    "#result .cr-badge",
    "#result .cr-meta",
    "#result .cr-muted",
    "#result .cr-download",
    ".drop-title",
    ".drop-hint",
    ".again",
]


def _require_browser() -> None:
    problem = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = "Playwright for Python is missing: pip install -e '.[test]'"
    if problem is None and not CHROMIUM.exists():
        problem = f"Chromium is not installed ({CHROMIUM} missing): {INSTALL}"
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run on CI: {problem}")
        pytest.skip(problem)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


class Shots:
    """Full-page screenshots, kept only when $PROVENANCE_SCREENSHOTS names a folder (they take time)."""

    def __init__(self) -> None:
        chosen = os.environ.get("PROVENANCE_SCREENSHOTS")
        self.folder = Path(chosen) if chosen else None
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)

    def take(self, page: Any, name: str, *, desktop: bool = False) -> None:
        if self.folder is None:
            return
        page.screenshot(path=str(self.folder / f"{name}.png"), full_page=True)
        if desktop:
            page.set_viewport_size({"width": 1100, "height": 900})
            page.screenshot(path=str(self.folder / f"{name}-desktop.png"), full_page=True)
            page.set_viewport_size(PHONE)


@pytest.fixture(scope="module")
def shots() -> Shots:
    return Shots()


@dataclass(frozen=True)
class Setup:
    service: Service
    files: dict[str, Path]
    store: Path
    policy: TrustPolicy


@pytest.fixture(scope="module")
def setup(
    identity: Identity, identity_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    folder = tmp_path_factory.mktemp("media")
    store_path = folder / "manifests.db"
    with pytest.MonkeyPatch.context() as mp:
        # A fixed identifier sequence, as in conftest: repeatable watermark recovery.
        rng = random.Random(20261122)
        mp.setattr(sys.modules["provenance.stamp"].secrets, "token_bytes", lambda n: rng.randbytes(n))
        info = GenerationInfo(generator="Acme Studio", generator_version="2.1", model="acme-diffusion")
        with open_store(store_path) as store:
            stamped = stamp(encode(photo("coffee"), "JPEG", quality=90), identity, info, store=store)
    image = Image.open(io.BytesIO(stamped.data)).convert("RGB")
    smaller = image.resize((image.width * 3 // 4, image.height * 3 // 4), Image.Resampling.BICUBIC)
    contents = {
        "coffee-stamped.jpg": stamped.data,
        "coffee-screenshot.jpg": encode(smaller, "JPEG", quality=80),  # credentials stripped
        "holiday.jpg": encode(photo("astronaut"), "JPEG", quality=90),
        "notes.txt": b"Meeting at 10, bring the photos.\n",
        "hostile.jpg": hostile_file(identity),
        # A C2PA public test file whose pixels were changed after signing.
        "tampered.jpg": (PUBLIC_JPEGS / "adobe-20220124-E-dat-CA.jpg").read_bytes(),
    }
    files = {name: folder / name for name in contents}
    for name, data in contents.items():
        files[name].write_bytes(data)
    anchors = identity_dir / "root-ca.pem"
    with running_service(["--store", str(store_path), "--trust-anchors", str(anchors)]) as service:
        yield Setup(service, files, store_path, TrustPolicy.from_files([anchors]))


# WCAG 2 relative luminance and contrast ratio, computed on the rendered styles.
_CONTRAST = """(selector) => {
  const parse = (c) => c.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const el = document.querySelector(selector);
  if (el === null) return null;
  let bg = el;
  while (bg && (getComputedStyle(bg).backgroundColor === "rgba(0, 0, 0, 0)")) bg = bg.parentElement;
  const back = parse(bg ? getComputedStyle(bg).backgroundColor : "rgb(255, 255, 255)");
  const [a, b] = [lum(parse(getComputedStyle(el).color)), lum(back)];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


class Session:
    """One phone-sized tab on the page, recording script errors and every request."""

    def __init__(self, browser: Any, url: str, scheme: str = "light") -> None:
        self.context = browser.new_context(viewport=PHONE, color_scheme=scheme, accept_downloads=True)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        self.page.on("console", self._console)
        self.page.on("dialog", lambda dialog: self.errors.append(f"dialog: {dialog.message}"))
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.goto(url + "/")

    def _console(self, message: Any) -> None:
        # Chrome logs every non-2xx response as a console error; an answered
        # 4xx from /api/verify is the page working, not a script error.
        expected = message.text.startswith("Failed to load resource") and "/api/verify" in str(
            message.location.get("url", "")
        )
        if message.type == "error" and not expected:
            self.errors.append(f"console: {message.text}")

    def upload(self, path: Path) -> None:
        self.page.set_input_files("#file", str(path))
        self.page.wait_for_selector(f'#status:has-text("Checked {path.name}"), #error:not([hidden])')

    def low_contrast(self, selectors: list[str]) -> list[tuple[str, float]]:
        """Elements whose text is below WCAG AA contrast (4.5:1) on their opaque background."""
        low = []
        for selector in selectors:
            ratio: float | None = self.page.evaluate(_CONTRAST, selector)
            if ratio is not None and ratio < 4.5:
                low.append((selector, round(ratio, 2)))
        return low

    def fits(self) -> bool:
        width: int = self.page.evaluate("document.scrollingElement.scrollWidth")
        return width <= PHONE["width"]

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def tab(browser: Any, setup: Setup) -> Iterator[Session]:
    # One tab for the whole module, as a person checks one file after another.
    opened = Session(browser, setup.service.url)
    yield opened
    opened.close()


@pytest.fixture
def session(tab: Session) -> Session:
    tab.errors.clear()
    tab.requests.clear()
    return tab


CASES = [
    (
        "coffee-stamped.jpg",
        "Verified Content Credentials",
        [
            "Yes, its credentials say it was generated by a trained AI model",
            "model: acme-diffusion",
            "tool: Acme Studio 2.1",
            "No: the content is exactly what was signed.",
            "Trusted: yes, this signer is in your trust list.",
            "it matches the credentials",
            "The watermark and the credentials belong together.",
        ],
        "trusted",
    ),
    (
        "coffee-screenshot.jpg",
        "Content Credentials recovered from the invisible watermark",
        [
            "Yes, its credentials say it was generated by a trained AI model",
            "The picture matches the one its credentials were issued for",
            "leads to the credentials shown here",
            "The original, as recorded",
        ],
        "recovered",
    ),
    (
        "tampered.jpg",
        "Altered: Content Credentials do not match",
        [
            "Yes: the file was changed after it was signed",
            "Do not rely on what the credentials say",
            "CA.jpg",
            "A.jpg",
        ],
        "altered",
    ),
    (
        "holiday.jpg",
        "No Content Credentials",
        ["nothing verifiable", "nor that it is genuine", "None found."],
        "no-credentials",
    ),
]


@pytest.mark.parametrize(("name", "headline", "facts", "shot"), CASES, ids=[c[3] for c in CASES])
def test_each_kind_of_file_gets_a_plain_answer(
    session: Session, setup: Setup, shots: Shots, name: str, headline: str, facts: list[str], shot: str
) -> None:
    session.upload(setup.files[name])
    page = session.page
    assert page.is_hidden("#error")
    assert page.inner_text("#result h2").endswith(headline)
    text = page.text_content("#result") or ""  # the DOM's text, before CSS upper-cases labels
    for fact in facts:
        assert fact in text
    assert page.inner_text("#status") == f"Checked {name}: {headline}."
    # Focus moves to the answer, so keyboard and screen-reader users land on it.
    assert page.evaluate("document.activeElement.closest('#result') !== null")
    # The file's own thumbnail, decoded by the browser.
    assert page.evaluate("document.querySelector('#result img.cr-thumb').naturalWidth") > 0
    assert session.fits(), "the answer scrolls sideways on a 390 px phone"
    assert session.low_contrast(TEXTS) == []
    shots.take(page, f"page-{shot}", desktop=shot == "recovered")
    assert session.errors == []
    assert all(u.startswith((setup.service.url, "data:")) for u in session.requests), session.requests


def test_a_file_that_is_not_media_gets_a_clear_error(session: Session, setup: Setup, shots: Shots) -> None:
    session.upload(setup.files["notes.txt"])
    page = session.page
    assert page.is_visible("#error")
    assert page.inner_text("#error h2") == "This is not a file the checker can read"
    assert "notes.txt: not a supported media format" in page.inner_text("#error")
    assert page.inner_text("#result") == ""
    assert session.fits()
    shots.take(page, "page-not-media")
    assert session.errors == []


def test_a_file_over_the_limit_is_refused_before_uploading(session: Session, setup: Setup) -> None:
    page = session.page
    path = setup.files["holiday.jpg"]
    kilobytes = -(-path.stat().st_size // 1024)
    page.evaluate("document.getElementById('form').dataset.maxBytes = '1000'")  # as --max-body would
    try:
        session.upload(path)
        assert page.inner_text("#error h2") == "This file is too large for this checker"
        expected = f"holiday.jpg is {kilobytes} KB; this checker accepts files up to 1 KB."
        assert expected in page.inner_text("#error")
        assert not any("/api/verify" in u for u in session.requests)
    finally:
        page.reload()


def test_the_tree_shows_every_ingredient_with_its_thumbnail_and_verdict(
    session: Session, setup: Setup
) -> None:
    session.upload(setup.files["tampered.jpg"])
    page = session.page
    nodes = page.locator("#result .cr-node")
    assert nodes.count() == 2
    assert "Altered or invalid credentials" in nodes.nth(0).inner_text()
    assert "No Content Credentials of its own" in nodes.nth(1).inner_text()
    widths = page.evaluate(
        "[...document.querySelectorAll('#result img.cr-node-thumb')].map(i => i.naturalWidth)"
    )
    assert len(widths) == 2 and all(w > 0 for w in widths)
    page.click("#result details summary")  # the experts' layer opens with a click
    assert "assertion.dataHash.mismatch" in page.inner_text("#result details")
    assert session.fits() and session.errors == []


def test_hostile_manifest_text_is_shown_not_run(session: Session, setup: Setup) -> None:
    session.upload(setup.files["hostile.jpg"])
    page = session.page
    assert page.inner_text("#result .cr-node h4") == HOSTILE_TITLE
    assert page.locator("#result script, #result svg, #result img[src=x]").count() == 0
    assert session.errors == []  # no alert() dialog, no script error


def test_check_another_file_opens_the_picker_again(session: Session, setup: Setup) -> None:
    page = session.page
    session.upload(setup.files["holiday.jpg"])
    with page.expect_file_chooser() as chooser:
        page.click("text=Check another file")
    chooser.value.set_files(str(setup.files["coffee-stamped.jpg"]))
    page.wait_for_selector('#status:has-text("Checked coffee-stamped.jpg")')
    assert page.inner_text("#result h2").endswith("Verified Content Credentials")
    assert session.errors == []


def test_json_download_is_the_verify_json_document(session: Session, setup: Setup) -> None:
    path = setup.files["coffee-screenshot.jpg"]
    session.upload(path)
    with session.page.expect_download() as info:
        session.page.click("text=Download the full result (JSON)")
    download = info.value
    assert download.suggested_filename == "coffee-screenshot.verify.json"
    document = json.loads(Path(download.path()).read_text(encoding="utf-8"))
    with open_store(setup.store) as store:
        expected = verify_bytes(path.read_bytes(), policy=setup.policy, store=store, name=path.name)
    assert document == {"file": path.name, **expected.to_dict()}


def test_keyboard_reaches_the_file_picker_and_controls_are_labelled(session: Session, shots: Shots) -> None:
    page = session.page
    page.reload()
    shots.take(page, "page-start")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to the checker"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "file"
    assert page.evaluate("document.activeElement.labels[0].textContent").strip().startswith("Choose a file")
    assert page.locator("h1").count() == 1
    assert page.get_attribute("#status", "role") == "status"
    assert page.get_attribute("#error", "role") == "alert"


def test_dark_mode_answer(browser: Any, setup: Setup, shots: Shots) -> None:
    dark = Session(browser, setup.service.url, scheme="dark")
    try:
        dark.upload(setup.files["coffee-screenshot.jpg"])
        background = dark.page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(21, 22, 26)"
        assert dark.low_contrast(TEXTS) == []
        assert dark.fits() and dark.errors == []
        shots.take(dark.page, "page-recovered-dark")
    finally:
        dark.close()


def test_html_report_renders_offline_with_its_verdict_and_thumbnail(
    browser: Any, setup: Setup, shots: Shots, tmp_path: Path
) -> None:
    source = PUBLIC_JPEGS / "adobe-20220124-E-dat-CA.jpg"
    report = tmp_path / "report.html"
    evidence = collect(source.name, source.read_bytes(), verify_file(source))
    write_report(report, [evidence], generated_at=datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc))
    context = browser.new_context(viewport=PHONE)
    try:
        page = context.new_page()
        requests: list[str] = []
        errors: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(report.as_uri())
        assert page.inner_text("article h2").endswith("Altered: Content Credentials do not match")
        thumb = page.locator("article img.cr-thumb")
        assert (thumb.get_attribute("src") or "").startswith("data:image/jpeg;base64,")
        assert page.evaluate("document.querySelector('article img.cr-thumb').naturalWidth") > 0
        assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
        assert all(u.startswith(("file:", "data:")) for u in requests), requests
        assert errors == []
        shots.take(page, "report-altered")
    finally:
        context.close()
