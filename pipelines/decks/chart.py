"""The report's chart, drawn with Pillow: one panel per measure (and Bradley–Terry once rated),
one horizontal bar per style x method with its 95% interval as a whisker."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from PIL import Image, ImageDraw, ImageFont

BAR_H, GAP, LABEL_W, PLOT_W, VALUE_W, PAD = 16, 6, 230, 360, 56, 14
COLOURS = ["#7c5cbf", "#d0568f", "#3b8ea5", "#e0a23b", "#5a9e5a", "#a0522d"]

FONT_SIZE = 11
# fonts with the en dash of "Bradley–Terry" and the "·" of labels, found by name in the system's
# font folders; Pillow's own default font (Aileron) has no en dash
FONTS = ("DejaVuSans.ttf", "LiberationSans-Regular.ttf", "Arial.ttf", "Helvetica.ttc")

Bar = tuple[str, float, float | None, float | None]  # label ("style · method"), value, low, high
Panel = tuple[str, Sequence[Bar]]  # title, bars


def draw_chart(panels: Sequence[Panel]) -> Image.Image:
    """A PNG-ready image of ``panels``, one below the other (a placeholder panel when empty).

    Plain data in, so the chart knows nothing of the report that feeds it.
    """
    shown: list[Panel] = list(panels) or [("no measures yet", [])]
    font = chart_font()
    heights = [PAD * 3 + max(1, len(b)) * (BAR_H + GAP) for _, b in shown]
    width = LABEL_W + PLOT_W + VALUE_W + 2 * PAD
    img = Image.new("RGB", (width, sum(heights) + PAD), "white")
    draw = ImageDraw.Draw(img)
    top = PAD
    for (title, bars), h in zip(shown, heights, strict=True):
        _panel(draw, font, title, bars, top)
        top += h
    return img


@cache
def chart_font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The first of :data:`FONTS` installed here, else Pillow's default font."""
    for name in FONTS:
        try:
            return ImageFont.truetype(name, FONT_SIZE)
        except OSError:  # not installed here: try the next
            continue
    return ImageFont.load_default(FONT_SIZE)


def has_glyph(font: object, char: str) -> bool:
    """Whether ``font`` draws ``char`` as itself, not as its missing-glyph box."""

    def pixels(text: str) -> bytes:
        img = Image.new("L", (4 * FONT_SIZE, 4 * FONT_SIZE))
        ImageDraw.Draw(img).text((2, 2), text, font=font, fill=255)  # type: ignore[arg-type]
        return img.tobytes()

    return pixels(char) != pixels("\uffff")  # U+FFFF is no character: always the box


def _text(font: object, text: str) -> str:
    """``text`` as ``font`` can draw it: an en dash it lacks becomes a hyphen, never a box."""
    return text if has_glyph(font, "–") else text.replace("–", "-")


def _panel(
    draw: ImageDraw.ImageDraw, font: object, title: str, bars: Sequence[Bar], top: int
) -> None:
    draw.text((PAD, top), _text(font, title), fill="black", font=font)
    if not bars:
        return
    ends = [v for _, value, low, high in bars for v in (value, low, high) if v is not None]
    lo, hi = min(0.0, *ends), max(0.0, *ends)
    span = (hi - lo) or 1.0
    x0 = PAD + LABEL_W

    def x(v: float) -> int:
        return int(x0 + (v - lo) / span * (PLOT_W - 10))

    y = top + PAD * 2
    zero = x(0.0)
    styles: dict[str, str] = {}
    for label, value, low, high in bars:
        colour = styles.setdefault(label.split(" · ")[0], COLOURS[len(styles) % len(COLOURS)])
        draw.text((PAD, y + 2), _text(font, label[:34]), fill="black", font=font)
        draw.rectangle([min(zero, x(value)), y, max(zero, x(value)), y + BAR_H], fill=colour)
        if low is not None and high is not None:
            mid = y + BAR_H // 2
            draw.line([x(low), mid, x(high), mid], fill="black", width=1)
            draw.line([x(low), mid - 4, x(low), mid + 4], fill="black")
            draw.line([x(high), mid - 4, x(high), mid + 4], fill="black")
        draw.text((x0 + PLOT_W + 6, y + 2), f"{value:+.2f}", fill="#333", font=font)
        y += BAR_H + GAP
    draw.line([zero, top + PAD * 2 - 3, zero, y], fill="#888")
    draw.text((x0, y), f"{lo:+.2f}", fill="#666", font=font)
    draw.text((x0 + PLOT_W - 10, y), f"{hi:+.2f}", fill="#666", font=font, anchor="ra")
