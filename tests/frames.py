"""How stamped pictures reach a verifier in the wild: screen captures of a web page,
caption strips, borders. Drawn with Pillow (its built-in font, no system fonts), so the
tests and ``benchmarks/likeness_bench.py`` share exactly the same frames.

    >>> from PIL import Image
    >>> shot = browser_screenshot(Image.new("RGB", (600, 400), "grey"), zoom=0.67)
    >>> shot.size
    (1280, 518)
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable

from PIL import Image, ImageDraw, ImageFont

Frame = Callable[[Image.Image], Image.Image]

_WORDS = [
    "provenance", "credentials", "lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing",
    "elit", "sed", "do", "eiusmod", "tempor", "incididunt", "ut", "labore", "et", "dolore", "magna",
    "aliqua", "photograph", "generated", "model", "share", "comments", "reply", "posted", "minutes", "ago",
]


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size)


def _text_lines(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], rng: random.Random,
                size: int = 15, fill: str = "#202124") -> None:
    """Fill ``box`` with lines of words, as a page of text looks."""
    left, top, right, bottom = box
    font = _font(size)
    y = top
    while y + size < bottom:
        words: list[str] = []
        while True:
            candidate = " ".join([*words, rng.choice(_WORDS)])
            if draw.textlength(candidate, font=font) > right - left:
                break
            words = candidate.split()
        if rng.random() < 0.15:  # paragraph ends
            words = words[: max(1, len(words) // 2)]
        draw.text((left, y), " ".join(words), fill=fill, font=font)
        y += int(size * 1.6)


def browser_screenshot(picture: Image.Image, zoom: float = 0.67, size: tuple[int, int] | None = None,
                       at: tuple[int, int] = (220, 170), seed: int = 0) -> Image.Image:
    """A screen capture of a browser window showing ``picture`` in an article at page
    zoom ``zoom``: tab strip, address bar with a URL, bookmarks bar, a headline,
    paragraphs beside and below the picture, a grey sidebar. The picture is cut off
    where the window ends, as on a real screen. Without ``size``, the window is as
    tall as the page around the picture needs (a capture of the browser window, the
    picture about 60 % of its height) and at least 1280 px wide."""
    rng = random.Random(seed)
    sw, sh = round(picture.width * zoom), round(picture.height * zoom)
    width, height = size or (max(1280, at[0] + sw + 640), at[1] + sh + max(80, sh // 5))
    shot = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(shot)
    # Browser chrome: tabs, toolbar with the address field, bookmarks.
    draw.rectangle((0, 0, width, 38), fill="#dee1e6")
    draw.rounded_rectangle((8, 6, 248, 38), radius=8, fill="#ffffff")
    draw.text((20, 14), "Photo of the day - News", fill="#202124", font=_font(13))
    draw.rectangle((0, 38, width, 84), fill="#ffffff")
    for i, x in enumerate((14, 48, 82)):
        draw.ellipse((x, 50, x + 22, 72), outline="#5f6368", width=2 + i % 2)
    draw.rounded_rectangle((120, 46, width - 120, 76), radius=15, fill="#f1f3f4")
    draw.text((140, 53), "https://news.example.org/2026/12/photo-of-the-day", fill="#202124", font=_font(15))
    draw.line((0, 84, width, 84), fill="#c4c7c5")
    x = 14
    while x < width - 200:
        label = rng.choice(_WORDS).title()
        draw.text((x, 92), label, fill="#3c4043", font=_font(12))
        x += round(draw.textlength(label, font=_font(12))) + 28
    draw.line((0, 112, width, 112), fill="#c4c7c5")
    # Article: headline, then the picture with text beside and under it; a sidebar.
    draw.text((at[0], 124), "A picture that keeps its credentials", fill="#111111", font=_font(28))
    shown = picture.convert("RGB").resize((max(1, sw), max(1, sh)), Image.Resampling.BILINEAR)
    x0, y0 = at
    shot.paste(shown, (x0, y0))
    sidebar = width - 300
    draw.rectangle((sidebar, 112, width, height), fill="#f8f9fa")
    _text_lines(draw, (sidebar + 20, 130, width - 20, height), rng, size=13, fill="#5f6368")
    if x0 + shown.width + 40 < sidebar - 60:
        _text_lines(draw, (x0 + shown.width + 30, y0, sidebar - 30, y0 + shown.height), rng)
    _text_lines(draw, (x0, y0 + shown.height + 16, sidebar - 30, height), rng)
    _text_lines(draw, (20, y0, x0 - 20, height), rng, size=12, fill="#5f6368")
    return shot


def caption_strip(picture: Image.Image, fraction: float = 0.18, seed: int = 1) -> Image.Image:
    """The picture as a social post shares it: a strip with a caption below."""
    rng = random.Random(seed)
    strip = max(40, round(picture.height * fraction))
    out = Image.new("RGB", (picture.width, picture.height + strip), "#ffffff")
    out.paste(picture.convert("RGB"), (0, 0))
    draw = ImageDraw.Draw(out)
    draw.text((12, picture.height + 8), "@someone  ·  2h", fill="#536471", font=_font(14))
    _text_lines(draw, (12, picture.height + 30, picture.width - 12, picture.height + strip), rng, size=14)
    return out


def border(picture: Image.Image, width: int = 40, colour: str = "#ffffff") -> Image.Image:
    """The picture with a uniform border (a frame, a slide, a matte)."""
    out = Image.new("RGB", (picture.width + 2 * width, picture.height + 2 * width), colour)
    out.paste(picture.convert("RGB"), (width, width))
    return out


def jpeg(image: Image.Image, quality: int = 80) -> Image.Image:
    """Re-encoded as a JPEG (what an upload or a messenger does)."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def resized(image: Image.Image, factor: float) -> Image.Image:
    return image.resize((round(image.width * factor), round(image.height * factor)), Image.Resampling.BICUBIC)


# Each frame of a stamped picture that recovery must accept, by name.
SCREENSHOT_FRAMES: dict[str, Frame] = {
    "browser 67%": lambda im: browser_screenshot(im),
    "browser 67% + JPEG 85": lambda im: jpeg(browser_screenshot(im), 85),
    "browser 100%, cut off": lambda im: browser_screenshot(
        im, zoom=1.0, size=(max(1280, im.width + 900), 170 + im.height * 2 // 3)),
    "caption strip": lambda im: caption_strip(im),
    "caption strip + JPEG 80": lambda im: jpeg(caption_strip(im), 80),
    "border 40 px": lambda im: border(im),
    "black border 40 px + JPEG 80": lambda im: jpeg(border(im, colour="#000000"), 80),
    "border + caption, 0.75x, JPEG 80": lambda im: jpeg(resized(caption_strip(border(im, 24)), 0.75), 80),
}
