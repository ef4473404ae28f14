"""Hostile and awkward uploads: refused from the header with a plain message, or decoded well.

The files are generated here (tests/uploads.py); decoding lives in pipelines/faces/photo.py.
"""

import io
from pathlib import Path

import insightface
import numpy as np
import pytest
from PIL import Image
from uploads import BAD, encode, gray16_png, png_bomb, rgba_png

from pipelines.faces.analysis import FaceAnalyzer
from pipelines.faces.photo import (
    ImageTooLargeError,
    ImageTooThinError,
    PhotoError,
    UnreadableImageError,
    UnsupportedImageError,
    load_image,
)
from pipelines.tiny.face import write_tiny_face_pack

PORTRAIT = Path(insightface.__file__).parent / "data" / "images" / "Tom_Hanks_54745.png"


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory):
    pack = write_tiny_face_pack(tmp_path_factory.mktemp("pack"))
    return FaceAnalyzer(pack, det_size=320, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("case", list(BAD))
def test_bad_uploads_get_a_plain_message_naming_the_problem(case, tmp_path):
    name, make, words = BAD[case]
    path = tmp_path / name
    path.write_bytes(make())
    for source in (path, path.read_bytes()):
        with pytest.raises(PhotoError, match=words) as info:
            load_image(source)
        assert str(tmp_path) not in str(info.value)  # no server path on the participant's page
    assert name in str(info.value) or isinstance(source, bytes)


def test_a_file_named_as_a_photo_names_what_it_is(tmp_path):
    path = tmp_path / "selfie.jpg"
    path.write_bytes(b"%PDF-1.7 ...")
    with pytest.raises(UnreadableImageError, match=r"'selfie\.jpg' is not an image we can read"):
        load_image(path)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # pytest resets filters
def test_size_is_refused_from_the_header_before_any_decoding(monkeypatch):
    from PIL import ImageFile

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    bomb = png_bomb(12000, 12000)  # 144 megapixels in a few KB; below Pillow's own limit
    assert len(bomb) < 200_000
    with pytest.raises(ImageTooLargeError, match=r"12000x12000 px \(144 megapixels\)"):
        load_image(bomb)
    with pytest.raises(ImageTooLargeError, match="too large"):  # Pillow's own bomb error
        load_image(png_bomb(20000, 20000))
    with pytest.raises(ImageTooThinError, match="10000x8"):
        load_image(encode(Image.new("L", (10000, 8)), "PNG"))
    with pytest.raises(ImageTooThinError, match="8x10000"):
        load_image(encode(Image.new("L", (8, 10000)), "PNG"))


def test_the_pixel_cap_is_a_parameter():
    photo = encode(Image.new("RGB", (400, 300), "white"), "PNG")
    assert load_image(photo).size == (400, 300)
    with pytest.raises(ImageTooLargeError, match="limit is 0 megapixels"):
        load_image(photo, max_pixels=100_000)


def test_unsupported_modes_are_named():
    with pytest.raises(UnsupportedImageError, match=r"colour mode \(La\)"):
        load_image(Image.new("La", (64, 64)))


def test_16_bit_greyscale_png_keeps_its_contrast(analyzer):
    data = gray16_png(PORTRAIT)
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    img = load_image(data)
    grey = np.asarray(Image.open(PORTRAIT).convert("L"), dtype=np.int16)
    assert img.mode == "RGB" and np.abs(np.asarray(img)[:, :, 0] - grey).max() <= 1
    assert analyzer.analyze(data).num_faces == 1  # not the white image Pillow's convert gives


def test_transparent_pixels_become_white_not_black():
    img = load_image(rgba_png(PORTRAIT))
    assert img.getpixel((50, 5)) == (255, 255, 255)  # stored as transparent black
    assert img.getpixel((50, 60)) != (255, 255, 255)


@pytest.mark.parametrize(
    ("fmt", "mode"), [("GIF", "P"), ("JPEG", "CMYK"), ("PNG", "L"), ("PNG", "RGBA"), ("TIFF", "F")]
)
def test_other_modes_and_formats_decode_to_rgb(fmt, mode):
    src = Image.open(PORTRAIT).convert("L").convert(mode)
    img = load_image(encode(src, fmt))
    assert img.mode == "RGB" and img.size == (112, 112)
    assert np.asarray(img).std() > 20  # still a photo, not a flat image
