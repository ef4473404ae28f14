"""Photos people send leave nothing on disk (demo.transient): each upload is decoded once and
every copy Gradio made of it deleted; the page shows the decoded photo inline and sends it back,
so a selfie stays usable for as long as the page is open (it once expired after 10 minutes)."""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path
from typing import Any

import gradio as gr
import pytest
from gradio.data_classes import ImageData
from PIL import Image, ImageOps

from demo.compare_handlers import GONE, CompareHandlers, PhotoGoneError, read_photo
from demo.gradio_internals import mcp_uploads, point_mcp_uploads, upload_folder
from demo.raw_inputs import data_url_bytes
from demo.transient import RecentPhotos, file_digest, forget_upload, inline_image
from tests.test_compare_handlers import callbacks, fields


class Page:
    """What Gradio passes as ``request``: the page's session hash."""

    def __init__(self, session_hash: str) -> None:
        self.session_hash = session_hash


@pytest.fixture
def gradio_tmp(tmp_path, monkeypatch) -> Path:
    """A Gradio temp folder of the test's own, its MCP folder inside it (as build_demo sets)."""
    folder = tmp_path / "gradio-tmp"
    folder.mkdir()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(folder))
    before = mcp_uploads()
    point_mcp_uploads(str(folder / "mcp"))
    yield folder
    point_mcp_uploads(before)


def uploaded(folder: Path, source: Path, name: str = "selfie.jpg") -> Path:
    """``source`` as Gradio stores an upload: a hash-named folder holding the file."""
    path = folder / "3f2a9c" / name
    path.parent.mkdir(parents=True)
    shutil.copyfile(source, path)
    return path


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_an_upload_is_shown_inline_and_its_file_deleted_at_once(
    tiny_settings, portrait_path, gradio_tmp
):
    handlers = CompareHandlers(callbacks(tiny_settings))
    path = uploaded(gradio_tmp, portrait_path)
    values = handlers.upload(str(path), "", Page("kim"))
    shown = values[0]
    assert isinstance(shown, ImageData) and shown.path is None  # no file behind it
    assert shown.url.startswith("data:image/jpeg;base64,")
    assert files_in(gradio_tmp) == [] and not path.parent.exists()
    # what the page sends back with Generate is the photo itself, usable at any time later
    photo = Image.open(io.BytesIO(data_url_bytes(shown.url)))
    assert photo.size == Image.open(portrait_path).size
    checked = handlers.check(data_url_bytes(shown.url), **fields())
    assert checked.shown() == (None, None)  # already inline: the page keeps its value


def test_a_good_upload_clears_an_old_refusal_but_not_a_row_s_status(
    tiny_settings, portrait_path, gradio_tmp
):
    handlers = CompareHandlers(callbacks(tiny_settings))
    refusal = handlers.upload(str(uploaded(gradio_tmp, portrait_path)), "⚠️ Selfie: a PDF", None)
    assert refusal[2] == ""
    kept = handlers.upload(
        str(uploaded(gradio_tmp, portrait_path, "b.jpg")), "Rendered in 3 s", None
    )
    assert kept[2] == gr.update()  # the row's status stays


def test_an_unreadable_upload_is_refused_and_deleted_too(tiny_settings, gradio_tmp, tmp_path):
    handlers = CompareHandlers(callbacks(tiny_settings))
    pdf = tmp_path / "cv.pdf"
    pdf.write_bytes(b"%PDF-1.7\n" + b"x" * 100)
    path = uploaded(gradio_tmp, pdf, "selfie.jpg")
    values = handlers.upload(str(path), "", Page("kim"))
    assert values[0] is None and values[2].startswith("⚠️ Selfie:")
    assert "PDF" in values[2]
    assert files_in(gradio_tmp) == []


def test_a_click_sent_while_its_upload_was_read_finds_the_photo_for_that_page_only(
    tiny_settings, portrait_path, gradio_tmp
):
    handlers = CompareHandlers(callbacks(tiny_settings))
    path = str(uploaded(gradio_tmp, portrait_path))
    handlers.upload(path, "", Page("kim"))  # read and deleted; the click still names the path
    checked = handlers.check(path, **fields(), page="kim")
    assert checked.selfie is not None  # the page is sent the inline photo
    with pytest.raises(PhotoGoneError):  # another page cannot reach Kim's photo by its path
        handlers.check(path, **fields(), page="kai")


def test_a_photo_no_longer_held_is_taken_off_the_page_with_a_plain_message(tiny_settings):
    handlers = CompareHandlers(callbacks(tiny_settings))
    gone = "/srv/app/gradio-tmp/0ab1/selfie.heic"
    with pytest.raises(PhotoGoneError) as caught:
        handlers.click(gone, False, *fields().values(), request=Page("kim"))
    assert caught.value.message == GONE and "/srv" not in GONE
    selfie, row, status, *_ = handlers.refused(Page("kim"))
    assert selfie is None and row is None and status == f"⚠️ {GONE}"
    # any other refusal leaves the photo on screen
    with pytest.raises(gr.Error):
        handlers.click(None, False, *fields().values(), request=Page("kai"))
    assert handlers.refused(Page("kai"))[0] == gr.update()


def test_a_click_with_an_uploaded_file_deletes_it_and_sends_the_page_the_inline_photo(
    tiny_settings, portrait_path, gradio_tmp
):
    handlers = CompareHandlers(callbacks(tiny_settings))
    selfie = str(uploaded(gradio_tmp, portrait_path))
    ref_path = gradio_tmp / "77aa" / "ref.png"
    ref_path.parent.mkdir()
    Image.new("RGB", (32, 32), "teal").save(ref_path)
    values: list[Any] = handlers.click(
        selfie, False, *fields(reference=str(ref_path)).values(), request=Page("kim")
    )
    ticket, _saved, shown_selfie, shown_ref = values[:4]
    assert isinstance(shown_selfie, ImageData) and isinstance(shown_ref, ImageData)
    assert files_in(gradio_tmp) == []
    click = handlers.pending.take(ticket)
    assert click.request.reference_images[0].getpixel((0, 0)) == (0, 128, 128)


def test_an_example_photo_is_never_deleted(tiny_settings, portrait_path, gradio_tmp):
    """Gradio keeps one copy of each example photo in its cache for every page."""
    cb = callbacks(tiny_settings)
    cb = type(cb)(**{**cb.__dict__, "examples": [str(portrait_path)]})
    handlers = CompareHandlers(cb)
    cached = uploaded(gradio_tmp, portrait_path, portrait_path.name)
    checked = handlers.check(str(cached), **fields())
    assert cached.exists() and checked.shown() == (None, None)


def test_an_mcp_image_s_second_copy_is_deleted_with_the_upload(portrait_path, gradio_tmp):
    """Gradio's MCP layer writes a base64 image into its folder, then uploads that file."""
    mcp_copy = gradio_tmp / "mcp" / "e5d1" / "file.png"
    mcp_copy.parent.mkdir(parents=True)
    shutil.copyfile(portrait_path, mcp_copy)
    upload = uploaded(gradio_tmp, portrait_path, "file.png")
    other = gradio_tmp / "mcp" / "aa00" / "file.png"  # another caller's photo stays
    other.parent.mkdir()
    Image.new("RGB", (16, 16)).save(other)
    assert forget_upload(str(upload)) == 2
    assert files_in(gradio_tmp) == [other]


def test_files_outside_gradio_s_folders_are_never_deleted(portrait_path, gradio_tmp, tmp_path):
    mine = tmp_path / "mine.png"
    shutil.copyfile(portrait_path, mine)
    assert forget_upload(str(mine)) == 0 and mine.exists()
    assert forget_upload(b"bytes") == 0 and forget_upload(None) == 0
    kept = uploaded(gradio_tmp, portrait_path)
    assert forget_upload(str(kept), keep={file_digest(portrait_path)}) == 0 and kept.exists()


def test_the_inline_photo_carries_no_exif(tmp_path):
    img = Image.new("RGB", (20, 10), "red")
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # camera make; GPS is another tag of the same block
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    assert Image.open(buf).getexif()
    shown = inline_image(Image.open(io.BytesIO(buf.getvalue())))
    back = Image.open(io.BytesIO(data_url_bytes(shown.url)))
    assert not back.getexif() and back.size == (20, 10)


def test_recent_photos_are_kept_for_a_while_per_page():
    now = [0.0]
    recent = RecentPhotos(limit=2, max_age=60.0, clock=lambda: now[0])
    a, b, c = (Image.new("RGB", (1, 1)) for _ in range(3))
    recent.remember("kim", "/t/a.jpg", a)
    assert recent.recall("kim", "/t/a.jpg") is a and recent.recall("kai", "/t/a.jpg") is None
    recent.remember("kim", "/t/b.jpg", b)
    recent.remember("kim", "/t/c.jpg", c)
    assert recent.recall("kim", "/t/a.jpg") is None  # beyond the limit
    now[0] = 61.0
    assert recent.recall("kim", "/t/c.jpg") is None  # too old


def test_read_photo_names_the_style_reference_in_its_errors(gradio_tmp, tmp_path):
    bad = gradio_tmp / "0c" / "ref.jpg"
    bad.parent.mkdir()
    bad.write_bytes(b"")
    with pytest.raises(Exception, match=r"^Style reference: The file 'ref\.jpg' is empty"):
        read_photo(str(bad), "kim", RecentPhotos(), what="Style reference")
    assert not bad.exists()


# ----------------------------------------------------------------------------- every route


def a_new_photo(portrait_path: Path, folder: Path, tag: int) -> Path:
    """The test portrait mirrored and marked: a face no example photo shares bytes with."""
    img = ImageOps.mirror(Image.open(portrait_path).convert("RGB"))
    img.putpixel((0, 0), (tag % 256, 7, 7))
    path = folder / f"selfie-{tag}.png"
    img.save(path)
    return path


def copies_left(data: bytes) -> list[Path]:
    """Files holding exactly ``data`` in Gradio's upload folder and its MCP server's folder."""
    digest = hashlib.sha256(data).hexdigest()
    folders = {Path(upload_folder()), Path(mcp_uploads())}
    return [
        p
        for folder in folders
        if folder.is_dir()
        for p in folder.rglob("*")
        if p.is_file() and p.stat().st_size == len(data) and file_digest(p) == digest
    ]
