"""Face analysis on generated tiny packs, run through insightface's own FaceAnalysis classes."""

import io
import shutil
import threading
from pathlib import Path

import insightface
import numpy as np
import pytest
from insightface.model_zoo.arcface_onnx import ArcFaceONNX
from insightface.model_zoo.scrfd import SCRFD
from PIL import ExifTags, Image

from pipelines.faces.analysis import (
    CROP_SIZE,
    FaceAnalyzer,
    FaceModelsMissingError,
    FaceTooSmallError,
    NoFaceError,
    face_pack_dir,
    largest_face_index,
)
from pipelines.faces.photo import UnreadableImageError, image_hash, load_image
from pipelines.tiny.face import DEFAULT_BOXES, DET_FILE, REC_FILE, write_tiny_face_pack

IMAGES = Path(insightface.__file__).parent / "data" / "images"
PORTRAIT = IMAGES / "Tom_Hanks_54745.png"  # 112 x 112
GROUP = IMAGES / "t1.jpg"  # 1280 x 886
DET = 320  # fast on CPU; see test_default_det_size_matches_320 for 640

# Widest (A), tallest (B) and largest by area (C) are three different boxes
THREE_BOXES = [(0.05, 0.05, 0.60, 0.20), (0.70, 0.05, 0.80, 0.95), (0.10, 0.45, 0.45, 0.85)]
TINY_BOX = [(0.45, 0.30, 0.55, 0.40)]


@pytest.fixture(scope="module")
def packs(tmp_path_factory):
    root = tmp_path_factory.mktemp("face_packs")
    return {
        "default": write_tiny_face_pack(root / "default"),
        "three": write_tiny_face_pack(root / "three", boxes=THREE_BOXES, seed=1),
        "tiny": write_tiny_face_pack(root / "tiny", boxes=TINY_BOX),
    }


@pytest.fixture(scope="module")
def analyzer(packs):
    return FaceAnalyzer(packs["default"], det_size=DET, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def three(packs):
    return FaceAnalyzer(packs["three"], det_size=DET, providers=["CPUExecutionProvider"])


def _expected_box(box, size):
    w, h = size
    return np.array([box[0] * w, box[1] * h, box[2] * w, box[3] * h])


def _cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# ----------------------------------------------------------------------------- tiny pack


def test_pack_loads_with_insightface_own_classes(analyzer):
    assert isinstance(analyzer.app.det_model, SCRFD)
    assert analyzer.app.det_model.use_kps and analyzer.app.det_model.fmc == 3
    rec = analyzer.app.models["recognition"]
    assert isinstance(rec, ArcFaceONNX)
    assert rec.input_size == (112, 112) and rec.input_mean == 127.5


def test_pack_is_small_and_deterministic(tmp_path):
    a = write_tiny_face_pack(tmp_path / "a", seed=3)
    b = write_tiny_face_pack(tmp_path / "b", seed=3)
    c = write_tiny_face_pack(tmp_path / "c", seed=4)
    for name in (DET_FILE, REC_FILE):
        assert (a / name).read_bytes() == (b / name).read_bytes()
        assert (a / name).stat().st_size < 64_000
    assert (a / REC_FILE).read_bytes() != (c / REC_FILE).read_bytes()


@pytest.mark.parametrize(
    "boxes", [[], [(0.5, 0.1, 0.4, 0.6)], [(0.1, 0.1, 1.2, 0.5)], [(0.1, 0.2, 0.3)]]
)
def test_pack_rejects_bad_boxes(tmp_path, boxes):
    with pytest.raises(ValueError, match="box"):
        write_tiny_face_pack(tmp_path, boxes=boxes)


# ----------------------------------------------------------------------------- analysis


def test_portrait_gives_one_unit_embedding_inside_the_image(analyzer):
    face = analyzer.analyze(PORTRAIT)
    assert face.num_faces == 1
    assert face.embedding.shape == (512,) and face.embedding.dtype == np.float32
    assert np.linalg.norm(face.embedding) == pytest.approx(1.0, abs=1e-5)
    assert face.image_size == (112, 112)
    x1, y1, x2, y2 = face.bbox
    assert 0 <= x1 < x2 <= 112 and 0 <= y1 < y2 <= 112
    np.testing.assert_allclose(face.bbox, _expected_box(DEFAULT_BOXES[0], (112, 112)), atol=1.5)
    assert face.kps.shape == (5, 2)
    assert np.all((face.kps >= [x1, y1]) & (face.kps <= [x2, y2]))
    assert face.kps[0, 0] < face.kps[1, 0] and face.kps[2, 1] < face.kps[3, 1]  # eyes, nose, mouth
    assert face.det_score > 0.5
    assert face.crop.size == (CROP_SIZE, CROP_SIZE) and face.crop.mode == "RGB"
    with pytest.raises(ValueError):  # cached results are shared: arrays are read-only
        face.embedding[0] = 0.0


def test_box_follows_the_content_not_the_letterbox(analyzer):
    # 1280x886 is letterboxed into 320x320 with 99 px of padding at the bottom
    face = analyzer.analyze(GROUP)
    np.testing.assert_allclose(face.bbox, _expected_box(DEFAULT_BOXES[0], (1280, 886)), rtol=0.01)


def test_default_det_size_matches_320(packs, analyzer):
    big = FaceAnalyzer(packs["default"], providers=["CPUExecutionProvider"])  # det_size=640
    a, b = big.analyze(PORTRAIT), analyzer.analyze(PORTRAIT)
    np.testing.assert_allclose(a.bbox, b.bbox, atol=1.0)


def test_blank_image_has_no_face(analyzer):
    with pytest.raises(NoFaceError, match="No face found"):
        analyzer.analyze(Image.new("RGB", (400, 300), (128, 128, 128)))


def test_detection_depends_on_the_pixels_inside_the_box(analyzer):
    rng = np.random.default_rng(0)
    flat = np.full((300, 300, 3), 128, np.uint8)
    texture = rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)
    x1, y1, x2, y2 = _expected_box(DEFAULT_BOXES[0], (300, 300)).astype(int)
    inside = flat.copy()
    inside[y1:y2, x1:x2] = texture[y1:y2, x1:x2]
    outside = texture.copy()
    outside[y1:y2, x1:x2] = 128
    assert analyzer.analyze(inside).num_faces == 1
    with pytest.raises(NoFaceError):
        analyzer.analyze(outside)


def test_three_faces_and_the_largest_by_area_is_used(three):
    face = three.analyze(GROUP)
    assert face.num_faces == 3
    expected = [_expected_box(b, (1280, 886)) for b in THREE_BOXES]
    areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in expected]
    assert int(np.argmax(areas)) == 2  # not the widest (0) nor the tallest (1)
    np.testing.assert_allclose(face.bbox, expected[2], rtol=0.01)
    w, h = face.face_size
    assert w * h == pytest.approx(areas[2], rel=0.02)


def test_largest_face_index_uses_area():
    boxes = np.array([[0, 0, 100, 10], [0, 0, 40, 40], [0, 0, 10, 90]], np.float32)
    assert largest_face_index(boxes) == 1  # areas 1000, 1600, 900


def test_group_photo_runs_through_face_analysis(three):
    faces = three.app.get(np.asarray(Image.open(GROUP))[:, :, ::-1].copy())
    assert len(faces) == 3
    embeddings = np.stack([f.normed_embedding for f in faces])  # (3, 512)
    sims = embeddings @ embeddings.T
    assert np.all(sims[~np.eye(3, dtype=bool)] < 0.9)  # different crops, different embeddings


def test_tiny_face_is_rejected_with_its_size(packs):
    small = FaceAnalyzer(packs["tiny"], det_size=DET, providers=["CPUExecutionProvider"])
    with pytest.raises(FaceTooSmallError, match=r"11x11 px.*at least 32 px"):
        small.analyze(PORTRAIT)


def test_different_photos_give_different_embeddings(analyzer):
    a, b = analyzer.analyze(PORTRAIT), analyzer.analyze(GROUP)
    assert _cos(a.embedding, b.embedding) < 0.9
    flipped = analyzer.analyze(np.asarray(Image.open(PORTRAIT))[:, ::-1])
    assert _cos(a.embedding, flipped.embedding) < 0.99


def test_same_content_is_a_cache_hit_without_detection(packs, monkeypatch):
    fa = FaceAnalyzer(packs["default"], det_size=DET, providers=["CPUExecutionProvider"])
    calls = []
    detect = fa.app.det_model.detect
    monkeypatch.setattr(
        fa.app.det_model, "detect", lambda *a, **k: calls.append(1) or detect(*a, **k)
    )
    first = fa.analyze(PORTRAIT)
    second = fa.analyze(PORTRAIT.read_bytes())  # same pixels, different container
    third = fa.analyze(Image.open(PORTRAIT).convert("RGBA"))  # opaque alpha: same pixels
    assert len(calls) == 1
    assert second is first and third is first
    info = fa.cache_info()
    assert (info.hits, info.misses, info.size) == (2, 1, 1)
    fa.analyze(GROUP)
    assert len(calls) == 2


def test_cache_is_bounded_lru(packs):
    fa = FaceAnalyzer(
        packs["default"], det_size=DET, providers=["CPUExecutionProvider"], cache_size=1
    )
    fa.analyze(PORTRAIT)
    fa.analyze(GROUP)  # evicts the portrait
    fa.analyze(PORTRAIT)
    assert fa.cache_info() == type(fa.cache_info())(hits=0, misses=3, size=1, maxsize=1)


def test_concurrent_requests_share_one_analyzer(packs):
    fa = FaceAnalyzer(packs["default"], det_size=DET, providers=["CPUExecutionProvider"])
    results, errors = [], []

    def work():
        try:
            results.append(fa.analyze(PORTRAIT))
        except Exception as exc:  # surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(np.array_equal(r.embedding, results[0].embedding) for r in results)
    info = fa.cache_info()
    assert info.hits + info.misses == 4 and info.size == 1


# ----------------------------------------------------------------------------- models missing


def test_missing_pack_is_reported_not_downloaded(tmp_path):
    assert face_pack_dir("buffalo_l", tmp_path) is None
    with pytest.raises(FaceModelsMissingError, match=r"buffalo_l.*models/buffalo_l"):
        FaceAnalyzer("buffalo_l", root=tmp_path)


def test_pack_found_by_name_under_root_models(tmp_path):
    write_tiny_face_pack(tmp_path / "models" / "mini")
    assert face_pack_dir("mini", tmp_path) == (tmp_path / "models" / "mini").resolve()
    assert face_pack_dir(tmp_path / "models" / "mini", Path("/nonexistent")) is not None
    (tmp_path / "models" / "empty").mkdir()
    assert face_pack_dir("empty", tmp_path) is None


def test_broken_packs_raise_typed_errors(tmp_path):
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "det.onnx").write_bytes(b"not a model")
    with pytest.raises(FaceModelsMissingError, match="could not be loaded"):
        FaceAnalyzer(tmp_path / "garbage", providers=["CPUExecutionProvider"])
    pack = write_tiny_face_pack(tmp_path / "no_rec")
    (pack / REC_FILE).unlink()
    with pytest.raises(FaceModelsMissingError, match="no recognition model"):
        FaceAnalyzer(pack, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(
    "kwargs", [{"det_size": 300}, {"det_size": 32}, {"min_face": 0}, {"cache_size": -1}]
)
def test_bad_arguments_name_the_value(packs, kwargs):
    name, value = next(iter(kwargs.items()))
    with pytest.raises(ValueError, match=f"{name}={value}"):
        FaceAnalyzer(packs["default"], **kwargs)


# ----------------------------------------------------------------------------- decoding


@pytest.mark.parametrize(
    "data", [b"", b"definitely not an image", PORTRAIT.read_bytes()[:400]], ids=str
)
def test_unreadable_bytes(data):
    with pytest.raises(UnreadableImageError):
        load_image(data)


def test_truncated_jpeg_is_unreadable():
    buf = io.BytesIO()
    Image.open(GROUP).save(buf, "JPEG")
    with pytest.raises(UnreadableImageError, match="could not be read"):
        load_image(buf.getvalue()[: len(buf.getvalue()) // 2])


def test_missing_file_names_it(tmp_path):
    with pytest.raises(UnreadableImageError, match=r"selfie\.jpg"):
        load_image(tmp_path / "selfie.jpg")


@pytest.mark.parametrize(
    "arr", [np.zeros((0, 10, 3), np.uint8), np.zeros((8, 8, 2), np.uint8), np.zeros((8, 8), bool)]
)
def test_bad_arrays_name_their_shape_or_dtype(arr):
    with pytest.raises(UnreadableImageError, match=r"shape|dtype"):
        load_image(arr)


def test_exif_orientation_is_applied():
    stored = Image.new("RGB", (120, 60), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 12, 12))  # red mark at the stored top-left
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # "rotate 90 degrees clockwise to display"
    buf = io.BytesIO()
    stored.save(buf, "JPEG", exif=exif, quality=95)
    img = load_image(buf.getvalue())
    assert img.size == (60, 120)
    assert img.getpixel((54, 5))[0] > 200  # the mark is now top-right
    assert img.getpixel((5, 5))[2] > 200


def test_modes_become_rgb():
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))  # fully transparent red
    assert load_image(rgba).getpixel((0, 0)) == (255, 255, 255)
    la = Image.new("LA", (4, 4), (0, 128))
    assert load_image(la).getpixel((0, 0)) == (127, 127, 127)
    assert load_image(Image.new("L", (4, 4), 77)).getpixel((0, 0)) == (77, 77, 77)
    cmyk = load_image(Image.new("CMYK", (4, 4), (0, 255, 255, 0)))
    assert cmyk.mode == "RGB" and cmyk.getpixel((0, 0)) == (255, 0, 0)
    i16 = Image.fromarray(np.full((4, 4), 65535, np.uint16))
    assert load_image(i16).getpixel((0, 0)) == (255, 255, 255)  # scaled, not clipped
    mid16 = Image.fromarray(np.full((4, 4), 32896, np.uint16))
    assert load_image(mid16).getpixel((0, 0)) == (128, 128, 128)
    pal = Image.new("P", (4, 4), 0)
    pal.info["transparency"] = 0
    assert load_image(pal).getpixel((0, 0)) == (255, 255, 255)
    assert load_image(np.full((3, 3), 0.5, np.float32)).getpixel((0, 0)) == (128, 128, 128)


def test_rgba_l_and_cmyk_portraits_are_analysed(analyzer):
    portrait = Image.open(PORTRAIT).convert("RGB")
    for mode in ("RGBA", "L", "CMYK"):
        face = analyzer.analyze(portrait.convert(mode))
        assert face.num_faces == 1 and face.image_size == (112, 112)


def test_huge_images_are_downscaled():
    img = load_image(Image.new("RGB", (5000, 3000), (10, 20, 30)))
    assert img.size == (2048, 1229)
    buf = io.BytesIO()
    Image.new("RGB", (4400, 4400), (200, 100, 50)).save(buf, "JPEG")
    assert load_image(buf.getvalue(), max_side=1000).size == (1000, 1000)  # via JPEG draft
    with pytest.raises(ValueError, match="max_side=0"):
        load_image(buf.getvalue(), max_side=0)


def test_caller_image_is_not_modified():
    src = Image.new("RGBA", (3000, 400), (1, 2, 3, 0))  # 3000x10 is now refused as too thin
    out = load_image(src)
    assert src.mode == "RGBA" and src.size == (3000, 400) and out is not src


def test_hash_depends_on_pixels_and_size():
    a = Image.new("RGB", (4, 4), (1, 2, 3))
    assert image_hash(a) == image_hash(a.copy())
    assert image_hash(a) != image_hash(Image.new("RGB", (4, 4), (1, 2, 4)))
    assert image_hash(a) != image_hash(Image.new("RGB", (2, 8), (1, 2, 3)))


# ----------------------------------------------------------------------------- stand-in detector


def test_the_stand_in_detector_says_so(analyzer, tmp_path):
    assert analyzer.stand_in
    assert analyzer.analyze(PORTRAIT).stand_in
    with pytest.raises(NoFaceError, match="stand-in"):
        analyzer.analyze(Image.new("RGB", (256, 256), (200, 180, 160)))


def test_a_detector_from_elsewhere_is_not_called_a_stand_in(packs, tmp_path):
    import onnx

    other = tmp_path / "other"
    shutil.copytree(packs["default"], other)
    det = onnx.load(other / DET_FILE)
    det.producer_name = "someone-else"
    onnx.save(det, other / DET_FILE)
    real = FaceAnalyzer(other, det_size=DET, providers=["CPUExecutionProvider"])
    assert not real.stand_in and not real.analyze(PORTRAIT).stand_in
