"""Preview engine: recipes make styles distinct, modifiers move pixels the right way."""

from __future__ import annotations

import dataclasses
import inspect
import itertools
from pathlib import Path
from types import MappingProxyType

import cv2
import insightface
import numpy as np
import pytest
from PIL import Image

from pipelines.preview.effects import apply_effects
from pipelines.preview.ops import OPS
from pipelines.preview.pixels import _Ctx
from pipelines.preview.render import (
    FACE_EXPAND,
    PreviewInputError,
    PreviewResult,
    crop_box,
    render_preview,
)
from pipelines.styles.catalog import StyleCatalog, load_catalog
from pipelines.styles.checks import PREVIEW_OPS
from pipelines.styles.modifiers import EFFECTS

PORTRAIT = Path(insightface.__file__).parent / "data" / "images" / "Tom_Hanks_54745.png"
SIZE = 160  # small renders keep the file fast; the recipes are size-independent


@pytest.fixture(scope="module")
def catalog() -> StyleCatalog:
    return load_catalog()


@pytest.fixture(scope="module")
def portrait() -> Image.Image:
    return Image.open(PORTRAIT).convert("RGB")


def _arr(result: PreviewResult) -> np.ndarray:
    return np.asarray(result.image).astype(np.float32) / 255.0  # (S, S, 3)


def _render(catalog: StyleCatalog, image: Image.Image, style: str, prompt: str = "a man", **kw):
    return render_preview(image, catalog.get(style), prompt, catalog, size=SIZE, **kw)


def _saturation(a: np.ndarray) -> float:
    return float((a.max(-1) - a.min(-1)).mean())


# ----------------------------------------------------------------------------- styles


def test_every_style_renders_a_distinct_image(catalog: StyleCatalog, portrait) -> None:
    outs = {sid: _arr(_render(catalog, portrait, sid)) for sid in catalog.ids()}
    for a in outs.values():
        assert a.shape == (SIZE, SIZE, 3)
        assert a.std() > 0.05  # not blank
    for (ia, a), (ib, b) in itertools.combinations(outs.items(), 2):
        assert np.abs(a - b).mean() > 0.02, f"{ia} and {ib} look the same"


def test_styles_have_their_signature_look(catalog: StyleCatalog, portrait) -> None:
    pencil = _arr(_render(catalog, portrait, "pencil_sketch"))
    assert pencil.mean() > 0.6  # mostly paper
    neon = _arr(_render(catalog, portrait, "neon_cyberpunk"))
    assert neon.mean() < 0.45  # dark night
    assert (neon[..., 2] - neon[..., 0]).mean() > 0.05  # blue/cyan cast
    pop = _arr(_render(catalog, portrait, "pop_art"))
    assert _saturation(pop) > 0.3  # the portrait is grey: the colour comes from the recipe
    anime = _arr(_render(catalog, portrait, "anime"))
    assert len(np.unique(anime.reshape(-1, 3), axis=0)) < len(
        np.unique(_arr(_render(catalog, portrait, "oil_painting")).reshape(-1, 3), axis=0)
    )  # flat colours


def test_recipe_drives_the_output(catalog: StyleCatalog, portrait) -> None:
    style = dataclasses.replace(
        catalog.get("anime"),
        preview=MappingProxyType({"recipe": (MappingProxyType({"op": "posterize", "levels": 2}),)}),
    )
    out = render_preview(portrait, style, "a man", catalog, size=SIZE)
    assert set(np.unique(np.asarray(out.image))) <= {0, 255}


# ----------------------------------------------------------------------------- modifiers


def test_golden_hour_warms(catalog: StyleCatalog, portrait) -> None:
    base = _arr(_render(catalog, portrait, "3d_animated", "a man"))
    warm = _render(catalog, portrait, "3d_animated", "a man, golden hour lighting")
    assert warm.applied == [
        ("golden hour lighting", {"warmth": 0.45, "brightness": 0.05, "glow": 0.2})
    ]
    w = _arr(warm)
    assert (w[..., 0] - w[..., 2]).mean() > (base[..., 0] - base[..., 2]).mean() + 0.05
    cool = _arr(_render(catalog, portrait, "3d_animated", "a man, blue hour lighting"))
    assert (cool[..., 0] - cool[..., 2]).mean() < (base[..., 0] - base[..., 2]).mean() - 0.03


def test_black_and_white_removes_colour(catalog: StyleCatalog, portrait) -> None:
    base = _arr(_render(catalog, portrait, "pop_art"))
    bw = _arr(_render(catalog, portrait, "pop_art", "a man, black and white"))
    assert _saturation(base) > 0.3
    assert _saturation(bw) < 0.01


def test_lighting_and_mood_change_brightness_and_contrast(catalog: StyleCatalog, portrait) -> None:
    base = _arr(_render(catalog, portrait, "oil_painting"))
    high = _arr(_render(catalog, portrait, "oil_painting", "a man, high key lighting"))
    low = _arr(_render(catalog, portrait, "oil_painting", "a man, low key lighting"))
    assert high.mean() > base.mean() + 0.03 > low.mean() + 0.06
    flat = _arr(_render(catalog, portrait, "oil_painting", "a man, low contrast"))
    assert flat.std() < base.std() - 0.02


def test_vignette_darkens_the_corners(catalog: StyleCatalog, portrait) -> None:
    def corners(a: np.ndarray) -> float:
        k = SIZE // 8
        return float(np.mean([a[:k, :k], a[:k, -k:], a[-k:, :k], a[-k:, -k:]]))

    base = _arr(_render(catalog, portrait, "comic_book"))
    dark = _arr(_render(catalog, portrait, "comic_book", "a man, chiaroscuro"))
    assert corners(dark) < corners(base) * 0.75


def test_film_grain_and_soft_focus_change_fine_detail(catalog: StyleCatalog, portrait) -> None:
    def detail(a: np.ndarray) -> float:
        g = a.mean(-1)
        return float(np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean())

    base = _arr(_render(catalog, portrait, "3d_animated"))
    grain = _arr(_render(catalog, portrait, "3d_animated", "a man, film grain"))
    assert detail(grain) > detail(base) * 1.5
    inked = _arr(_render(catalog, portrait, "comic_book"))  # halftone and ink: much fine detail
    soft = _arr(_render(catalog, portrait, "comic_book", "a man, soft focus"))
    assert detail(soft) < detail(inked) * 0.8


def test_pastel_and_sepia(catalog: StyleCatalog, portrait) -> None:
    base = _arr(_render(catalog, portrait, "pop_art"))
    pastel = _arr(_render(catalog, portrait, "pop_art", "a man, pastel colors"))
    assert pastel.min(-1).mean() > base.min(-1).mean() + 0.1  # lifted toward white
    assert _saturation(pastel) < _saturation(base)
    sepia = _arr(_render(catalog, portrait, "pencil_sketch", "a man, sepia tone"))
    assert (sepia[..., 0] - sepia[..., 2]).mean() > 0.08  # brown on grey pencil


def test_zoom_modifiers_change_the_crop(catalog: StyleCatalog, portrait) -> None:
    base = _render(catalog, portrait, "anime")
    close = _render(catalog, portrait, "anime", "a man, extreme close-up")
    side = base.crop_box[2] - base.crop_box[0]
    assert side == min(portrait.size)
    assert close.crop_box[2] - close.crop_box[0] < side * 0.7
    assert not np.array_equal(_arr(base), _arr(close))


@pytest.mark.parametrize("name", [n for n in EFFECTS if n != "zoom"])
def test_every_effect_changes_pixels(name: str) -> None:
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(0.5, 0.2, (64, 64, 3)), 0, 1).astype(np.float32)
    img = np.asarray(Image.fromarray((img * 255).astype(np.uint8)).resize((64, 64)), np.float32)
    img = img / 255.0
    ctx = _Ctx(seed=0, size=64, center=(32.0, 32.0))
    low, high = EFFECTS[name]
    value = high if high > 0 else low
    out = apply_effects(img, ctx, {name: value})
    assert out.shape == img.shape and out.dtype == np.float32
    assert np.abs(out - img).mean() > 1e-3, name


# ----------------------------------------------------------------------------- determinism, crop


def test_deterministic_for_a_seed(catalog: StyleCatalog, portrait) -> None:
    prompt = "a man, film grain, canvas texture"
    a = _render(catalog, portrait, "watercolor", prompt, seed=7)
    b = _render(catalog, portrait, "watercolor", prompt, seed=7)
    c = _render(catalog, portrait, "watercolor", prompt, seed=8)
    assert a.image.tobytes() == b.image.tobytes()
    assert a.image.tobytes() != c.image.tobytes()


def test_noise_is_not_rerolled_when_a_modifier_is_added(catalog: StyleCatalog, portrait) -> None:
    # same seed: a colour-only modifier must change the tint, not re-roll the paper grain
    def fine(d: np.ndarray) -> float:  # high-frequency energy of a difference image
        return float(np.abs(d - cv2.blur(d, (5, 5))).mean())

    a = _arr(_render(catalog, portrait, "pencil_sketch", "a man", seed=3))
    b = _arr(_render(catalog, portrait, "pencil_sketch", "a man, monochrome", seed=3))
    reseeded = _arr(_render(catalog, portrait, "pencil_sketch", "a man", seed=4))
    assert np.abs(a - b).mean() > 1e-3  # the modifier did something
    assert fine(a - b) < 0.1 * fine(a - reseeded)


def test_face_bbox_crop_is_used(catalog: StyleCatalog, portrait) -> None:
    canvas = Image.new("RGB", (600, 400), (128, 128, 128))
    canvas.paste(portrait, (400, 150))  # face at (400, 150)-(512, 262)
    bbox = (400.0, 150.0, 512.0, 262.0)
    res = _render(catalog, canvas, "anime", face_bbox=bbox)
    side = round(112 * FACE_EXPAND)
    assert res.crop_box == (
        456 - side // 2,
        206 - side // 2,
        456 + side - side // 2,
        206 + side - side // 2,
    )
    empty = _render(catalog, canvas, "anime", face_bbox=(20.0, 20.0, 132.0, 132.0))
    assert _arr(res).std() > _arr(empty).std() + 0.05  # the face is in the crop, not the wall
    centre = _render(catalog, canvas, "anime")
    assert centre.crop_box == (100, 0, 500, 400)


def test_crop_box_is_clamped_inside_the_image() -> None:
    assert crop_box((600, 400), (560.0, 350.0, 600.0, 400.0)) == (510, 310, 600, 400)  # 50 * 1.8
    assert crop_box((600, 400), (0.0, 0.0, 500.0, 390.0)) == (50, 0, 450, 400)  # too big: shrinks
    assert crop_box((600, 400), None, zoom=1.0) == (200, 100, 400, 300)


def test_other_image_modes_and_sizes(catalog: StyleCatalog, portrait) -> None:
    for mode in ("L", "RGBA", "P"):
        res = _render(catalog, portrait.convert(mode), "watercolor")
        assert res.image.mode == "RGB" and res.image.size == (SIZE, SIZE)
    big = render_preview(portrait, catalog.get("anime"), "a man", catalog, size=64)
    assert big.image.size == (64, 64)


# ------------------------------------------------------------------------ bad input, vocabulary


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": 10}, "size=10"),
        ({"size": 512.0}, "size=512.0"),
        ({"seed": -1}, "seed=-1"),
        ({"face_bbox": (50.0, 50.0, 10.0, 90.0)}, "x1 < x2"),
        ({"face_bbox": (5000.0, 0.0, 5100.0, 10.0)}, "overlapping the 112x112 image"),
        ({"face_bbox": (1.0, 2.0, 3.0)}, "use \\(x1, y1, x2, y2\\)"),
        ({"face_bbox": (0.0, 0.0, float("nan"), 9.0)}, "face_bbox"),
    ],
)
def test_bad_arguments_raise_typed_errors(catalog: StyleCatalog, portrait, kwargs, match) -> None:
    with pytest.raises(PreviewInputError, match=match) as err:
        render_preview(portrait, catalog.get("anime"), "a man", catalog, **kwargs)
    assert isinstance(err.value, ValueError)


def test_bad_image_style_prompt(catalog: StyleCatalog, portrait) -> None:
    style = catalog.get("anime")
    with pytest.raises(PreviewInputError, match=r"PIL\.Image\.Image, got ndarray"):
        render_preview(np.zeros((8, 8, 3)), style, "x", catalog)  # type: ignore[arg-type]
    with pytest.raises(PreviewInputError, match="Style from the catalog, got 'anime'"):
        render_preview(portrait, "anime", "x", catalog)  # type: ignore[arg-type]
    with pytest.raises(PreviewInputError, match="prompt must be a str"):
        render_preview(portrait, style, None, catalog)  # type: ignore[arg-type]
    with pytest.raises(PreviewInputError, match="too small"):
        render_preview(Image.new("RGB", (4, 4)), style, "x", catalog)


def test_every_declared_op_is_implemented_with_its_parameters() -> None:
    assert set(OPS) == set(PREVIEW_OPS)
    for name, params in PREVIEW_OPS.items():
        sig = inspect.signature(OPS[name])
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
        for param in params:
            assert accepts_any or param in sig.parameters, f"{name} lacks {param}"
