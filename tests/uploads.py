"""Hostile and awkward uploads, generated in the test (no photos of people are committed).

Each maker returns the file's bytes; ``write_all`` puts every case in a folder, named as a
person would find it (a PDF called ``selfie.jpg``).
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of ``width`` x ``height`` black pixels: tiny file, huge when decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, greyscale
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    parts = [packer.compress(row) for _ in range(height)]
    idat = b"".join(parts) + packer.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def gray16_png(portrait: Path) -> bytes:
    """The portrait as a 16-bit greyscale PNG (mode I;16), the full 0..65535 range used."""
    grey = np.asarray(Image.open(portrait).convert("L"), dtype=np.uint16) * 257
    return encode(Image.fromarray(grey), "PNG")


def rgba_png(portrait: Path) -> bytes:
    """The portrait with a fully transparent border: transparent pixels store black RGB."""
    img = Image.open(portrait).convert("RGBA")
    arr = np.asarray(img).copy()
    arr[:12, :, :] = (0, 0, 0, 0)  # transparent black: must come out white
    return encode(Image.fromarray(arr), "PNG")


BAD: dict[str, tuple[str, Callable[[], bytes], str]] = {
    # case: (file name, bytes, words the message must contain)
    "empty": ("selfie.jpg", lambda: b"", "empty"),
    "random": ("selfie.png", lambda: os.urandom(4096), "not an image we can read"),
    "text": ("selfie.jpg", lambda: b"hello, this is not a photo\n" * 20, "not an image we"),
    "pdf": ("selfie.jpg", lambda: b"%PDF-1.4\n1 0 obj << >> endobj\n%%EOF\n", "PDF"),
    "html": ("selfie.png", lambda: b"<!DOCTYPE html><html><img src=x></html>", "web page"),
    "bomb": ("selfie.png", lambda: png_bomb(20000, 20000), "too large"),
    "thin": ("selfie.png", lambda: encode(Image.new("RGB", (10000, 8), "white"), "PNG"), "thin"),
}


def write_all(folder: Path) -> dict[str, Path]:
    """Every bad case as a file under ``folder/<case>/``; returns case -> path."""
    out = {}
    for case, (name, make, _) in BAD.items():
        path = folder / case / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(make())
        out[case] = path
    return out
