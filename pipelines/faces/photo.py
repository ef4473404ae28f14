"""Decode an uploaded photo safely: refuse what is not a photo before spending memory on it.

Uploads reach the app as raw files (the UI and the API never let Gradio decode them), so this is
the one place where untrusted bytes become pixels. The header is read first (Pillow opens
lazily); the size is checked against :data:`MAX_PIXELS` and :data:`MAX_ASPECT` before anything
is decoded, so a small file that claims 400 megapixels costs nothing. Every refusal is a
:class:`PhotoError` whose message names the problem in plain words.
"""

from __future__ import annotations

import hashlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipelines.core.errors import InputError

log = logging.getLogger(__name__)
# Pillow warns from 89 megapixels; the app refuses far earlier (MAX_PIXELS), so the warning is noise
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

ImageSource = str | Path | bytes | Image.Image | np.ndarray

MAX_PIXELS = 40_000_000  # decoded pixels; a 48 MP phone JPEG still passes (decoded at 1/2 scale)
MAX_ASPECT = 10  # longer side / shorter side; a thinner strip cannot hold a face
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa"}
_MODES = {"1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "I", "F"} | _ALPHA_MODES
_ASK = "upload a photo (JPEG, PNG or WebP)"


class PhotoError(InputError):
    """The upload cannot be used as a photo; the message names the problem."""


class UnreadableImageError(PhotoError):
    """Not an image we can read: empty, another kind of file, or damaged."""


class ImageTooLargeError(PhotoError):
    """More pixels than :data:`MAX_PIXELS`; refused before decoding."""


class ImageTooThinError(PhotoError):
    """A strip: one side more than :data:`MAX_ASPECT` times the other."""


class UnsupportedImageError(PhotoError):
    """A colour mode the app cannot turn into RGB."""


def load_image(
    source: ImageSource, max_side: int = 2048, max_pixels: int = MAX_PIXELS
) -> Image.Image:
    """Decode ``source`` to an upright RGB image whose longest side is at most ``max_side``.

    EXIF orientation is applied, transparency is composited on white and L/CMYK/16-bit inputs
    become RGB. Files and bytes are checked (size, shape, mode) before any pixel is decoded. The
    caller's image or array is never modified.
    """
    if int(max_side) < 1:
        raise ValueError(f"max_side={max_side} is not allowed: use a positive number of pixels")
    label = _label(source)
    if isinstance(source, np.ndarray):
        img = _from_array(source)
    elif isinstance(source, Image.Image):
        img = source
    else:
        img = _open(source, label)
        if img.format == "JPEG":  # decode a huge JPEG at a reduced scale, >= max_side
            img.draft("RGB", (max_side, max_side))
    _check_header(img, label, max_pixels)
    try:
        img.load()
        img = ImageOps.exif_transpose(img)  # always a new image: the caller's stays untouched
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        log.info("decoding %s failed: %s", label, exc)  # Pillow's text names server paths
        raise UnreadableImageError(
            f"The photo {label} could not be read: the file is damaged or cut short. "
            f"Try it again, or {_ASK}."
        ) from exc
    img = _to_rgb(img, label)
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return img


def _label(source: object) -> str:
    if isinstance(source, str | Path):
        return repr(Path(source).name)
    if isinstance(source, bytes):
        return f"upload ({len(source)} bytes)"
    if isinstance(source, np.ndarray):
        return f"array {source.shape} {source.dtype}"
    return "image"


def _open(source: str | Path | bytes, label: str) -> Image.Image:
    """Pillow's lazy open: reads the header only."""
    if isinstance(source, bytes):
        head = source[:64]
        stream: Any = io.BytesIO(source)
    elif isinstance(source, str | Path):
        path = Path(source).expanduser()
        if not path.is_file():
            raise UnreadableImageError(f"The photo {label} was not found at {path}")
        with path.open("rb") as f:
            head = f.read(64)
        stream = path
    else:
        raise UnreadableImageError(
            f"Cannot read a photo from {type(source).__name__}: "
            "use a file path, bytes, a PIL image or a numpy array"
        )
    if not head:
        raise UnreadableImageError(f"The file {label} is empty: {_ASK}.")
    try:
        return Image.open(stream)
    except Image.DecompressionBombError as exc:  # Pillow's own cap, far above ours
        raise ImageTooLargeError(
            f"The photo {label} is too large (over {MAX_PIXELS // 1_000_000} megapixels): "
            "use a smaller photo."
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        log.info("opening %s failed: %s", label, exc)
        kind = sniff(head)
        what = f"it is {kind}" if kind else "the file is not a picture"
        raise UnreadableImageError(
            f"The file {label} is not an image we can read ({what}): {_ASK}."
        ) from exc


def sniff(head: bytes) -> str | None:
    """What a file that is not an image looks like, from its first bytes, in plain words."""
    text = head.lstrip().lower()
    if text.startswith(b"%pdf"):
        return "a PDF document"
    if text.startswith((b"<svg", b"<?xml")):
        return "an SVG drawing or XML file, not a photo"
    if text.startswith((b"<!doctype", b"<html", b"<")):
        return "an HTML web page"
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftyphevc"):
        return "a HEIC photo: save it as JPEG first"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "a text file"


def _check_header(img: Image.Image, label: str, max_pixels: int) -> None:
    """Size, shape and mode from the header: nothing has been decoded yet."""
    width, height = img.size
    if width < 1 or height < 1:
        raise UnreadableImageError(f"The photo {label} is empty (0 pixels): {_ASK}.")
    # Not Pillow's MAX_IMAGE_PIXELS: one value for the whole process (max_pixels is per call), it
    # raises only past twice that, sees a JPEG before draft() shrinks it and its error lacks WxH.
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"The photo {label} is too large: {width}x{height} px "
            f"({width * height / 1e6:.0f} megapixels); the limit is "
            f"{max_pixels / 1e6:.0f} megapixels. Use a smaller photo."
        )
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise ImageTooThinError(
            f"The photo {label} is too thin: {width}x{height} px; one side may be at most "
            f"{MAX_ASPECT} times the other. Crop it around the face."
        )
    if img.mode not in _MODES and not img.mode.startswith("I;16"):
        raise UnsupportedImageError(_unsupported(label, img.mode))


def _unsupported(label: str, mode: str) -> str:
    return (
        f"The photo {label} uses an unsupported colour mode ({mode}): "
        "save it as an ordinary RGB JPEG or PNG."
    )


def _from_array(arr: np.ndarray) -> Image.Image:
    """HxW, HxWx1, HxWx3 (RGB) or HxWx4 (RGBA) array; uint8, uint16 or float in [0, 1]."""
    shape_ok = arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4))
    if not shape_ok or arr.size == 0:
        raise UnreadableImageError(
            f"The image array has shape {arr.shape}: use (H, W), (H, W, 3) RGB or (H, W, 4) RGBA"
        )
    if arr.dtype == np.uint8:
        data = arr
    elif arr.dtype == np.uint16:
        data = (arr.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        data = (np.clip(np.nan_to_num(arr), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    else:
        raise UnreadableImageError(
            f"The image array has dtype {arr.dtype}: use uint8, uint16 or float in [0, 1]"
        )
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[:, :, 0]
    return Image.fromarray(np.ascontiguousarray(data))


def _to_rgb(img: Image.Image, label: str = "image") -> Image.Image:
    try:
        return _convert(img)
    except ValueError as exc:  # Pillow has no conversion for this mode
        raise UnsupportedImageError(_unsupported(label, img.mode)) from exc


def _convert(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in _ALPHA_MODES:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if img.mode.startswith("I") or img.mode == "F":
        # Pillow's own I;16 -> RGB conversion clips at 255 instead of scaling the 16-bit range
        arr = np.asarray(img, dtype=np.float32)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        if img.mode == "F" and arr.max() <= 1.0:
            peak = 1.0
        grey = np.clip(arr / peak * 255.0, 0, 255).round().astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    return img.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV, RGBX


def image_hash(img: Image.Image) -> str:
    """sha256 of the decoded RGB pixels and size: equal for the same photo in any container."""
    digest = hashlib.sha256(f"{img.mode}:{img.width}x{img.height}:".encode())
    digest.update(img.tobytes())
    return digest.hexdigest()
