"""Face analysis: find the largest face in a decoded selfie, embed it (insightface), cache it.

Decoding lives in :mod:`pipelines.faces.photo` (re-exported here). ``FaceAnalyzer`` wraps
``insightface.app.FaceAnalysis`` with detection + recognition only, applies the app's policy
(largest face, minimum size), turns every failure into a typed ``FaceError`` with a message a
user can act on, says when its detector is a stand-in that detects nothing, and keeps an
in-memory LRU of results keyed by a hash of the decoded pixels. Nothing about a face is ever
written to disk.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pipelines.core.errors import InputError
from pipelines.faces.photo import ImageSource, image_hash, load_image

__all__ = [
    "CROP_SIZE",
    "STAND_IN_PRODUCER",
    "FaceAnalyzer",
    "FaceError",
    "FaceModelsMissingError",
    "FaceResult",
    "FaceTooSmallError",
    "NoFaceError",
    "face_pack_dir",
    "largest_face_index",
]

log = logging.getLogger(__name__)

CROP_SIZE = 224  # aligned face crop for display; norm_crop needs a multiple of 112
FACE_MODULES = ["detection", "recognition"]
# producer name of the generated stand-in detector (pipelines/tiny/face.py): it does not detect
STAND_IN_PRODUCER = "become-lab.tiny_face"


class FaceError(InputError):
    """The photo cannot give a usable face; the message says what to do."""


class NoFaceError(FaceError):
    """No face was detected."""


class FaceTooSmallError(FaceError):
    """The largest face is below the minimum size."""


class FaceModelsMissingError(FaceError):
    """The insightface model pack is not available locally."""


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True, eq=False)  # eq=False: `==` on numpy fields would be ambiguous
class FaceResult:
    """The face the app uses. Arrays are read-only because results are shared via the cache."""

    embedding: np.ndarray  # (512,) float32, L2-normalised ArcFace embedding
    kps: np.ndarray  # (5, 2) float32: eyes, nose, mouth corners in image pixels
    bbox: tuple[float, float, float, float]  # x1, y1, x2, y2 in image pixels, clipped to it
    det_score: float
    crop: Image.Image  # CROP_SIZE aligned face crop, for display only
    num_faces: int  # faces detected; the largest is this one
    image_size: tuple[int, int]  # (width, height) of the loaded image
    image_hash: str
    stand_in: bool = False  # True: a stand-in detector placed the box; nothing was detected

    @property
    def face_size(self) -> tuple[float, float]:
        """(width, height) of the bbox in pixels."""
        x1, y1, x2, y2 = self.bbox
        return x2 - x1, y2 - y1


@dataclass(frozen=True, eq=False)
class OutputFace:
    """The largest face found in a generated output, for the identity measure."""

    embedding: np.ndarray  # (512,) float32, L2-normalised
    num_faces: int


@dataclass(frozen=True)
class CacheInfo:
    """Hits, misses and size of the face cache, like ``functools.lru_cache``'s."""

    hits: int
    misses: int
    size: int
    maxsize: int


# ----------------------------------------------------------------------------- model pack


def face_pack_dir(pack: str | Path, root: Path) -> Path | None:
    """The local folder of ``pack`` (a folder, or a name under ``root/models``), or None."""
    candidates = [Path(pack).expanduser(), Path(root).expanduser() / "models" / str(pack)]
    for folder in candidates:
        if folder.is_dir() and (any(folder.glob("*.onnx")) or (folder / "manifest.json").is_file()):
            return folder.resolve()
    return None


def largest_face_index(bboxes: np.ndarray) -> int:
    """Index of the largest box by area; ``bboxes`` is (N, 4+) x1, y1, x2, y2."""
    areas = (bboxes[:, 2] - bboxes[:, 0]) * (bboxes[:, 3] - bboxes[:, 1])  # (N,)
    return int(np.argmax(areas))


def is_stand_in(app: object) -> bool:
    """Whether ``app``'s detector is the generated stand-in: it places boxes, it detects nothing."""
    session = getattr(getattr(app, "det_model", None), "session", None)
    try:
        return session.get_modelmeta().producer_name == STAND_IN_PRODUCER  # type: ignore[union-attr]
    except AttributeError:
        return False


class FaceAnalyzer:
    """insightface detection + recognition with the app's policy and an in-memory result cache.

    One instance is shared by all requests: ONNX Runtime sessions are safe to run concurrently
    and the cache is guarded by a lock. Detection runs outside the lock.
    """

    def __init__(
        self,
        pack: str | Path = "buffalo_l",
        root: Path = Path("~/.insightface"),
        det_size: int = 640,
        providers: Sequence[str] | None = None,
        min_face: int = 32,
        cache_size: int = 32,
        allow_download: bool = False,
    ) -> None:
        if det_size < 64 or det_size % 32:
            raise ValueError(f"det_size={det_size} is not allowed: use a multiple of 32, >= 64")
        if min_face < 1:
            raise ValueError(f"min_face={min_face} is not allowed: use a positive pixel count")
        if cache_size < 0:
            raise ValueError(f"cache_size={cache_size} is not allowed: use 0 (off) or more")
        root = Path(root).expanduser()
        self.det_size = int(det_size)
        self.min_face = int(min_face)
        self.cache_size = int(cache_size)

        pack_dir = face_pack_dir(pack, root)
        if pack_dir is None and not allow_download:
            raise FaceModelsMissingError(
                f"Face models {str(pack)!r} were not found: put the pack's .onnx files in "
                f"{root / 'models' / Path(pack).name} or point BECOME_FACE_PACK at a folder "
                "holding them (downloads are off)"
            )
        from insightface.app import FaceAnalysis
        from insightface.model_zoo.onnxruntime_utils import get_default_providers

        providers = list(providers) if providers else get_default_providers()
        name = str(pack_dir) if pack_dir is not None else str(pack)  # a name downloads
        try:
            app = FaceAnalysis(
                name=name, root=str(root), allowed_modules=FACE_MODULES, providers=providers
            )
        except AssertionError as exc:  # insightface asserts that a detection model exists
            raise FaceModelsMissingError(
                f"Face model pack {name} has no usable detection model: "
                "it needs an SCRFD .onnx file (e.g. det_10g.onnx)"
            ) from exc
        except Exception as exc:  # ONNX Runtime's load errors share no narrower base class
            raise FaceModelsMissingError(
                f"Face model pack {name} could not be loaded ({exc}): replace its .onnx files"
            ) from exc
        if "recognition" not in app.models:
            raise FaceModelsMissingError(
                f"Face model pack {name} has no recognition model: "
                "it needs an ArcFace .onnx file (e.g. w600k_r50.onnx)"
            )
        first = providers[0][0] if isinstance(providers[0], tuple) else providers[0]
        ctx_id = -1 if first == "CPUExecutionProvider" else 0  # -1 pins insightface to CPU
        app.prepare(ctx_id=ctx_id, det_size=(self.det_size, self.det_size))
        self.app = app
        self.pack_dir = Path(app.model_dir)
        self.providers = providers
        self.stand_in = is_stand_in(app)

        self._cache: OrderedDict[str, FaceResult] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        log.info("face models from %s, det_size=%d, %s", self.pack_dir, det_size, providers)

    def analyze(self, image: ImageSource) -> FaceResult:
        """The largest face in ``image``; raises a ``FaceError`` subclass when there is none."""
        return self.analyze_loaded(load_image(image))

    def analyze_loaded(self, img: Image.Image) -> FaceResult:
        """:meth:`analyze` for an image that :func:`load_image` already decoded (no second pass)."""
        key = image_hash(img)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                self.hits += 1
                return cached
            self.misses += 1
        result = self._detect(img, key)
        if self.cache_size:
            with self._lock:
                self._cache[key] = result
                self._cache.move_to_end(key)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return result

    def _detect(self, img: Image.Image, key: str) -> FaceResult:
        from insightface.utils.face_align import norm_crop

        bgr = np.ascontiguousarray(
            np.asarray(img)[:, :, ::-1]
        )  # (H, W, 3) uint8, insightface's order
        faces = self.app.get(bgr)
        if not faces and self.stand_in:
            raise NoFaceError(
                "No face found: the centre of the photo is blank (face detection is a stand-in "
                "here, no face models installed); use a photo with the face in the centre"
            )
        if not faces:
            raise NoFaceError(
                "No face found in the photo: use a well-lit, front-facing selfie "
                "with the whole face visible"
            )
        bboxes = np.stack([np.asarray(f.bbox, dtype=np.float32) for f in faces])  # (N, 4)
        face = faces[largest_face_index(bboxes)]
        x1, y1, x2, y2 = (float(v) for v in face.bbox)
        w, h = x2 - x1, y2 - y1
        if min(w, h) < self.min_face:
            raise FaceTooSmallError(
                f"The face is too small: {w:.0f}x{h:.0f} px, its shorter side must be at least "
                f"{self.min_face} px; use a closer photo or a larger image"
            )
        kps = np.asarray(face.kps, dtype=np.float32).copy()  # (5, 2)
        embedding = np.asarray(face.normed_embedding, dtype=np.float32).copy()  # (512,)
        kps.flags.writeable = False
        embedding.flags.writeable = False
        crop = norm_crop(bgr, landmark=kps, image_size=CROP_SIZE)[:, :, ::-1]  # (224, 224, 3) RGB
        width, height = img.size
        return FaceResult(
            embedding=embedding,
            kps=kps,
            bbox=(
                float(np.clip(x1, 0, width)),
                float(np.clip(y1, 0, height)),
                float(np.clip(x2, 0, width)),
                float(np.clip(y2, 0, height)),
            ),
            det_score=float(face.det_score),
            crop=Image.fromarray(np.ascontiguousarray(crop)),
            num_faces=len(faces),
            image_size=(width, height),
            image_hash=key,
            stand_in=self.stand_in,
        )

    @property
    def recognizer_id(self) -> str:
        """Which recognition model embeds faces: "<pack>/<onnx file>", for measures."""
        rec = self.app.models["recognition"]
        return f"{self.pack_dir.name}/{Path(getattr(rec, 'model_file', 'recognition')).name}"

    def embed_largest(self, img: Image.Image, det_size: int | None = None) -> OutputFace | None:
        """The largest face's embedding in a generated image, or None when there is no face.

        Unlike :meth:`analyze_loaded` there is no size policy, no display crop and no cache: a
        generated output is measured once, and a small face is still a face. ``det_size``
        (a multiple of 32) overrides the detector's input size: an output of 512 px needs no
        upscaling to the selfie's 640, and a 64 px test output runs in a fraction of the time.
        """
        return self.embed_largest_many([img], [det_size])[0]

    def embed_largest_many(
        self, images: Sequence[Image.Image], det_sizes: Sequence[int | None]
    ) -> list[OutputFace | None]:
        """:meth:`embed_largest` of each image; the recogniser runs once for all the faces."""
        from insightface.utils.face_align import norm_crop

        rec = self.app.models["recognition"]
        crops, found = [], []
        for img, det_size in zip(images, det_sizes, strict=True):
            bgr = np.ascontiguousarray(np.asarray(img.convert("RGB"))[:, :, ::-1])  # (H, W, 3)
            size = self.det_size if det_size is None else int(det_size)
            bboxes, kpss = self.app.det_model.detect(bgr, input_size=(size, size), max_num=0)
            if bboxes.shape[0] == 0 or kpss is None:
                found.append(None)
                continue
            i = largest_face_index(bboxes)
            crops.append(norm_crop(bgr, landmark=kpss[i], image_size=rec.input_size[0]))
            found.append(int(bboxes.shape[0]))
        if not crops:
            return [None] * len(found)
        raw = np.asarray(rec.get_feat(crops), dtype=np.float32).reshape(len(crops), -1)
        embeddings = raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-12)
        out: list[OutputFace | None] = []
        k = 0
        for n in found:
            if n is None:
                out.append(None)
                continue
            out.append(OutputFace(embedding=embeddings[k], num_faces=n))  # (512,) normalised
            k += 1
        return out

    def cache_info(self) -> CacheInfo:
        """How the in-memory face cache is doing."""
        with self._lock:
            return CacheInfo(self.hits, self.misses, len(self._cache), self.cache_size)

    def clear_cache(self) -> None:
        """Forget every cached face (benchmarks measure a miss with it)."""
        with self._lock:
            self._cache.clear()
