"""The learned prompt scorer, in two stages. The fast stage: ridge regression on hashed
n-grams, style interactions, hand features and a mean of static MiniLM word vectors, blended with
an RBF kernel-ridge head on that mean (kernel.py); it scores every prompt the search tries. The
contextual stage (contextual.py, optional): kernel ridge on contextual MPNet and MiniLM
encodings, blended with the fast score; it re-ranks only the search's best few
(:meth:`LearnedScorer.rerank`). Without an encoder the stage runs on the others, without any the
fast stage runs alone, and the label says so.

Trains in seconds on CPU from (prompt, score[, style]) rows, saves to one ``.npz`` (arrays + a
JSON metadata blob, no pickle) that loads in milliseconds. Scores from different sources are
z-scored per source before training, so predictions are in "standard deviations above the
source's mean": higher is better, comparable across sources.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import threading
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipelines.augment.learned.contextual import ContextConfig, ContextHead, ContextStage
from pipelines.augment.learned.data import ScoredPrompts, correlations
from pipelines.augment.learned.encoder import (
    EncoderSpec,
    EncoderUnavailable,
    EncodingStore,
    TextEncoder,
    shared_encoder,
)
from pipelines.augment.learned.features import FeatureConfig, Featurizer, words
from pipelines.augment.learned.kernel import KernelConfig, KernelHead
from pipelines.augment.learned.wordvec import WORDVEC_FILE, WordVectors
from pipelines.core.blas import on_one_blas_thread
from pipelines.core.errors import InputError, UnavailableError

if TYPE_CHECKING:
    from pipelines.core.settings import Settings

# 5: one contextual head per encoder; 4: optional contextual stage; 3: kernel head; 2: more hand
# features, word vectors in the model
FORMAT_VERSION = 5
READABLE_VERSIONS = (2, 3, 4, 5)  # a version-2 file is the linear part alone
MODEL_KIND = "hashed-ngram-wordvec-style-ridge+wordvec-rbf-krr"
CONTEXT_KIND = "+contextual-encoders-rbf-krr"  # appended when the model has the second stage
MODEL_SUFFIX = ".npz"
BUNDLED_MODEL = "pqpp-v5.npz"  # under <assets>/learned/
FAST_ONLY = "fast scorer only"  # the label of a ranking without the contextual stage
CURRENT_MODEL = f"current{MODEL_SUFFIX}"  # under <data>/learned/: the model in use
VERSION_KEY = "version_id"  # in the metadata: which kept version a model file is
BUNDLED_VERSION = "bundled"  # the version id of the bundled PQPP model
DEFAULT_WORDVEC = Path(__file__).resolve().parents[3] / "assets" / "learned" / WORDVEC_FILE


class ModelFileError(InputError):
    """A model file is missing, corrupt or of an unsupported format version."""


class NoModelError(UnavailableError):
    """The holder has no scorer loaded yet."""


class NoContextStage(UnavailableError):
    """The model has no contextual stage, or its encoder cannot be loaded here."""


@dataclass(frozen=True)
class TrainConfig:
    """How :meth:`LearnedScorer.train` fits: features, ridge penalty, CV folds, kernel head."""

    features: FeatureConfig = field(default_factory=FeatureConfig)
    alpha: float = 5.0  # ridge penalty, chosen by 5-fold CV on PQPP train (3, 5, 8, 12, 20)
    cv_folds: int = 0  # >= 2: also report k-fold CV metrics in the metadata
    # blended with the ridge; needs the word-vector block (features.wordvec_dim > 0)
    kernel: KernelConfig = field(default_factory=KernelConfig)
    wordvec_path: Path = DEFAULT_WORDVEC  # table used when features.wordvec_dim > 0
    context: ContextConfig | None = None  # the contextual stage; None: the fast stage alone
    # folder of on-disk encoding caches read and extended by training (EncoderSpec.cache_file)
    encodings_dir: Path | None = None

    def __post_init__(self) -> None:
        if not self.alpha > 0:
            raise ValueError(f"alpha={self.alpha} is not allowed: use a positive number")
        if self.cv_folds == 1 or self.cv_folds < 0:
            raise ValueError(f"cv_folds={self.cv_folds} is not allowed: use 0 (off) or >= 2")


def _fit_ridge(x, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import Ridge

    model = Ridge(alpha=alpha).fit(x, y)
    return model.coef_.astype(np.float32), float(model.intercept_)


class LearnedScorer:
    """Predicts a prompt's quality score; ``score`` is cheap enough to call inside a search."""

    def __init__(
        self,
        featurizer: Featurizer,
        weights: np.ndarray,  # (dim,) float32
        bias: float,
        metadata: dict,
        kernel: KernelHead | None = None,
        kernel_weight: float = 0.0,
        context: ContextStage | None = None,
    ) -> None:
        if kernel is not None and featurizer.wordvec is None:
            raise ModelFileError("a kernel head needs the word-vector block, which is off")
        if weights.shape != (featurizer.config.dim,):
            raise ModelFileError(
                f"weights have shape {weights.shape}, features need ({featurizer.config.dim},)"
            )
        self.featurizer = featurizer
        self.weights = weights
        self.bias = bias
        self.metadata = metadata
        self.kernel = kernel
        self.kernel_weight = kernel_weight if kernel is not None else 0.0
        self.context = context
        self._gain_cache: dict[tuple, np.ndarray] = {}
        self._gain_lock = threading.Lock()

    # -- training -----------------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        sources: Sequence[ScoredPrompts],
        config: TrainConfig | None = None,
        validation: Sequence[ScoredPrompts] = (),
    ) -> LearnedScorer:
        """Fits on all ``sources`` (each z-scored on its own), then scores ``validation``."""
        config = config or TrainConfig()
        if not sources:
            raise ValueError("no training data: pass at least one source")
        t0 = time.perf_counter()
        texts, styles, targets, source_meta = [], [], [], []
        for s in sources:
            y = np.asarray(s.scores, np.float64)
            mean, std = float(y.mean()), float(y.std())
            # A constant source carries no ranking signal; centre it and leave the scale.
            z = (y - mean) / std if std > 1e-9 else y - mean
            texts.extend(s.texts)
            styles.extend(s.styles)
            targets.append(z)
            source_meta.append(
                {
                    "name": s.source,
                    "rows": len(s),
                    "text_col": s.text_col,
                    "score_col": s.score_col,
                    "style_col": s.style_col,
                    "score_mean": round(mean, 4),
                    "score_std": round(std, 4),
                    "styles": sorted({x for x in s.styles if x}),
                }
            )
        y = np.concatenate(targets)  # (n,)
        if len(y) < 5:
            raise ValueError(f"need at least 5 training rows, got {len(y)}")
        wordvec = None
        if config.features.wordvec_dim:
            if not Path(config.wordvec_path).is_file():
                raise ModelFileError(
                    f"word-vector table {str(config.wordvec_path)!r} does not exist: "
                    "restore it or train with FeatureConfig(wordvec_dim=0)"
                )
            wordvec = WordVectors.load(config.wordvec_path)
        encode_s = 0.0
        raws = None  # per encoder, (n, its dim) encodings, when the second stage is trained
        if config.context is not None:
            t1 = time.perf_counter()
            raws = [
                encode_texts(spec, texts, config.encodings_dir) for spec in config.context.encoders
            ]
            encode_s = time.perf_counter() - t1
        featurizer = Featurizer.fit(config.features, texts, wordvec)
        x = featurizer.transform(texts, styles)  # (n, dim) sparse
        z = _vectors(featurizer, texts) if _uses_kernel(featurizer, config) else None  # (n, d)
        cv = None
        if config.cv_folds >= 2:
            cv = cls._cross_validate(x, z, raws, y, config)
        weights, bias = _fit_ridge(x, y, config.alpha)
        kernel = None if z is None else KernelHead.fit(z, y, config.kernel)
        context = None
        if raws is not None and config.context is not None:
            context = ContextStage.fit(raws, y, config.context)
        metadata = {
            "format_version": FORMAT_VERSION,
            "kind": MODEL_KIND + (CONTEXT_KIND if context else ""),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "sources": source_meta,
            "rows": len(y),
            "styles": sorted({s for s in styles if s}),
            "features": config.features.to_dict(),
            "alpha": config.alpha,
            "kernel": None
            if kernel is None
            else {**config.kernel.to_dict(), "support_rows": len(kernel.support)},
            "wordvec": None
            if wordvec is None
            else {"file": Path(config.wordvec_path).name, "words": len(wordvec.vocab)},
            "context": None
            if context is None
            else {
                **context.config.to_dict(),
                "support_rows": len(context.heads[0].kernel.support),
                "dims": [int(h.centre.shape[0]) for h in context.heads],
            },
            "target": "per-source z-score of the score column",
            "train_seconds": round(time.perf_counter() - t0, 2),
            "encode_seconds": round(encode_s, 2),  # of train_seconds; 0 when all were cached
            "cv": cv,
            "validation": {},
        }
        scorer = cls(featurizer, weights, bias, metadata, kernel, config.kernel.weight, context)
        for v in validation:
            scorer.metadata["validation"][v.source] = scorer.evaluate(v)
        return scorer

    @staticmethod
    def _cross_validate(
        x,
        z: np.ndarray | None,
        raws: Sequence[np.ndarray] | None,
        y: np.ndarray,
        config: TrainConfig,
    ) -> dict:
        """k-fold CV of the whole model (every stage refitted per fold); with a contextual
        stage, the fast stage's own figures are under ``"fast"``."""
        rng = np.random.default_rng(0)
        folds = rng.permutation(len(y)) % config.cv_folds
        pred = np.zeros_like(y)
        both = np.zeros_like(y)
        for k in range(config.cv_folds):
            tr, te = folds != k, folds == k
            w, b = _fit_ridge(x[tr], y[tr], config.alpha)
            pred[te] = x[te] @ w + b
            if z is not None:
                head = KernelHead.fit(z[tr], y[tr], config.kernel)
                wk = config.kernel.weight
                pred[te] = (1 - wk) * pred[te] + wk * head.predict(z[te])
            if raws is not None and config.context is not None:
                stage = ContextStage.fit([r[tr] for r in raws], y[tr], config.context)
                both[te] = stage.blend(pred[te], [r[te] for r in raws])
        if raws is None:
            return {"folds": config.cv_folds, **correlations(pred, y)}
        return {
            "folds": config.cv_folds,
            "stage": "two-stage",
            **correlations(both, y),
            "fast": correlations(pred, y),
        }

    # -- inference ----------------------------------------------------------------------------

    @on_one_blas_thread
    def score(
        self, prompts: Sequence[str], style: str | Sequence[str | None] | None = None
    ) -> np.ndarray:
        """(n,) predicted scores, higher is better; ``style``: one id for all, or one per prompt."""
        if isinstance(prompts, str):
            raise TypeError("prompts must be a sequence of strings, not a single string")
        styles = [style] * len(prompts) if style is None or isinstance(style, str) else style
        if len(styles) != len(prompts):
            raise ValueError(f"got {len(styles)} styles for {len(prompts)} prompts")
        if not prompts:
            return np.zeros(0, np.float32)
        x = self.featurizer.transform(prompts, styles)  # (n, dim)
        linear = (x @ self.weights + self.bias).astype(np.float64)
        if self.kernel is None:
            return linear
        head = self.kernel.predict(_vectors(self.featurizer, prompts))
        return (1 - self.kernel_weight) * linear + self.kernel_weight * head

    def gains(self, reference: str, additions: Sequence[str], style: str | None) -> np.ndarray:
        """(len(additions),) score change of appending each addition to ``reference``; cached."""
        key = (reference, tuple(additions), style)
        hit = self._gain_cache.get(key)
        if hit is None:
            s = self.score([reference, *(f"{reference}, {a}" for a in additions)], style)
            hit = s[1:] - s[0]
            with self._gain_lock:  # requests and the warm-up thread fill it concurrently
                if len(self._gain_cache) > 256:  # bounded: one entry per (style, bank)
                    self._gain_cache.clear()
                self._gain_cache[key] = hit
        return hit

    # -- the contextual stage ------------------------------------------------------------------

    def _load_encoders(self) -> tuple[list[TextEncoder | None], dict[str, str]]:
        """Each contextual encoder loaded once per process, in the stage's order (None where it
        cannot load), and {encoder name: why not} for those."""
        assert self.context is not None
        loaded: list[TextEncoder | None] = []
        missing: dict[str, str] = {}
        for spec in self.context.config.encoders:
            try:
                loaded.append(shared_encoder(spec))
            except EncoderUnavailable as e:
                loaded.append(None)
                missing[spec.name] = str(e)
        return loaded, missing

    def encoders(self) -> list[TextEncoder | None]:
        """The contextual stage's encoders, in its order (None where one cannot load: see
        :meth:`missing_encoders`); raises :class:`NoContextStage` saying why when the model has
        no contextual stage or none of its encoders loads."""
        if self.context is None:
            raise NoContextStage("this model has no contextual stage (trained fast-only)")
        loaded, missing = self._load_encoders()
        if not missing or any(e is not None for e in loaded):
            return loaded
        raise NoContextStage("contextual encoder unavailable: " + "; ".join(missing.values()))

    def missing_encoders(self) -> dict[str, str]:
        """{encoder name: why it cannot load} for the contextual encoders that do not load."""
        return {} if self.context is None else self._load_encoders()[1]

    def context_reason(self) -> str | None:
        """None when the two-stage score is available, else why only the fast stage runs."""
        try:
            self.encoders()
        except NoContextStage as e:
            return str(e)
        return None

    def stage_label(self) -> str:
        """How this model ranks here: two-stage (with which encoders, and which are missing)
        or fast only (why)."""
        reason = self.context_reason()
        if reason is not None:
            return f"{FAST_ONLY} ({reason})"
        assert self.context is not None
        missing = self.missing_encoders()
        ran = [e.name for e in self.context.config.encoders if e.name not in missing]
        label = f"two-stage: fast scorer, re-ranked by contextual {' + '.join(ran)}"
        if missing:
            label += f" (without {', '.join(missing)}: unavailable here)"
        return label

    @on_one_blas_thread
    def rerank(
        self,
        prompts: Sequence[str],
        style: str | Sequence[str | None] | None = None,
        fast: np.ndarray | None = None,
    ) -> tuple[np.ndarray, bool]:
        """(n,) two-stage scores and True; or the fast scores and False when the contextual
        stage is unavailable (see :meth:`context_reason`). ``fast``: the prompts' fast scores,
        if already computed."""
        if fast is None:
            fast = self.score(prompts, style)
        fast = np.asarray(fast, np.float64)
        if len(fast) != len(prompts):
            raise ValueError(f"got {len(fast)} fast scores for {len(prompts)} prompts")
        try:
            encoders = self.encoders()
        except NoContextStage:
            return fast, False
        if not len(prompts):
            return fast, True
        assert self.context is not None
        raws = [None if e is None else e.encode(list(prompts)) for e in encoders]
        return self.context.blend(fast, raws), True

    def evaluate(self, data: ScoredPrompts) -> dict:
        """Correlations of (style-aware) predictions with the raw scores of ``data``: of the
        two-stage score when its encoder loads (the fast stage's under ``"fast"``), else of the
        fast stage, with ``"stage"`` saying which."""
        fast = self.score(data.texts, data.styles)
        final, two = self.rerank(data.texts, data.styles, fast)
        if not two:
            out: dict = {"stage": FAST_ONLY, **correlations(fast, data.scores)}
            if self.context is not None:  # a two-stage model whose encoder is missing here
                out["contextual_unavailable"] = self.context_reason()
            return out
        out = {
            "stage": "two-stage",
            **correlations(final, data.scores),
            "fast": correlations(fast, data.scores),
        }
        if missing := self.missing_encoders():
            out["encoders_unavailable"] = missing
        return out

    # -- persistence --------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Writes atomically, so a running app never reads a half-written model."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        nz = np.flatnonzero(self.weights)
        buf = io.BytesIO()
        wv = self.featurizer.wordvec
        extra = (
            {} if wv is None else {"wv_vocab": wv.vocab, "wv_table": wv.table.astype(np.float16)}
        )
        for i, head in enumerate(self.context.heads if self.context else ()):
            extra |= {
                f"c{i}_centre": head.centre.astype(np.float32),
                f"c{i}_support": head.kernel.support.astype(np.float16),
                f"c{i}_dual": head.kernel.dual.astype(np.float32),
                f"c{i}_offset": np.float64(head.kernel.offset),
            }
        if self.kernel is not None:
            extra |= {
                "k_support": self.kernel.support.astype(np.float16),
                "k_dual": self.kernel.dual.astype(np.float32),
                "k_offset": np.float64(self.kernel.offset),
            }
        np.savez_compressed(
            buf,
            **extra,
            w_idx=nz.astype(np.int32),
            w_val=self.weights[nz].astype(np.float32),
            bias=np.float64(self.bias),
            hand_mean=self.featurizer.hand_mean,
            hand_std=self.featurizer.hand_std,
            metadata=np.frombuffer(json.dumps(self.metadata).encode("utf-8"), np.uint8),
        )
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> LearnedScorer:
        """Reads a model saved by :meth:`save`; raises :class:`ModelFileError` if unusable."""
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"model file {str(path)!r} does not exist")
        try:
            with np.load(path, allow_pickle=False) as z:
                metadata = json.loads(z["metadata"].tobytes().decode("utf-8"))
                version = metadata.get("format_version")
                if version not in READABLE_VERSIONS:
                    raise ModelFileError(
                        f"model file {str(path)!r} has format_version {version!r}; "
                        f"this code reads versions {READABLE_VERSIONS}: retrain it"
                    )
                config = FeatureConfig.from_dict(metadata["features"])
                weights = np.zeros(config.dim, np.float32)
                weights[z["w_idx"]] = z["w_val"]
                wordvec = None
                if config.wordvec_dim:
                    wordvec = WordVectors(z["wv_vocab"], z["wv_table"].astype(np.float32))
                featurizer = Featurizer(config, z["hand_mean"], z["hand_std"], wordvec)
                bias = float(z["bias"])
                kernel, kernel_weight = None, 0.0
                if "k_support" in z:
                    meta = metadata["kernel"]
                    kernel = KernelHead(
                        z["k_support"].astype(np.float32),
                        z["k_dual"].astype(np.float32),
                        float(z["k_offset"]),
                        float(meta["gamma"]),
                    )
                    m, d = kernel.support.shape
                    if kernel.dual.shape != (m,) or wordvec is None or d != wordvec.dim:
                        raise ModelFileError(
                            f"model file {str(path)!r} has a kernel head of {m} x {d} support "
                            f"and {kernel.dual.shape[0]} coefficients that does not fit its "
                            "word vectors: retrain it"
                        )
                    kernel_weight = float(meta["weight"])
                context = None
                if metadata.get("context"):
                    context = _load_context(path, metadata["context"], z)
        except ModelFileError:
            raise
        except (OSError, ValueError, KeyError, TypeError, IndexError, zipfile.BadZipFile) as e:
            raise ModelFileError(
                f"model file {str(path)!r} is not a learned-scorer model: {e}"
            ) from None
        return cls(featurizer, weights, bias, metadata, kernel, kernel_weight, context)


def _load_context(path: Path, meta: dict, z) -> ContextStage:
    config = ContextConfig.from_dict(meta)
    heads = []
    for i, spec in enumerate(config.encoders):
        key = "c_" if "c_support" in z else f"c{i}_"  # format 4: one head, unnumbered
        kernel = KernelHead(
            z[key + "support"].astype(np.float32),
            z[key + "dual"].astype(np.float32),
            float(z[key + "offset"]),
            config.head.gamma,
        )
        centre = z[key + "centre"].astype(np.float64)
        m, d = kernel.support.shape
        if kernel.dual.shape != (m,) or centre.shape != (d,):
            raise ModelFileError(
                f"model file {str(path)!r} has a contextual head ({spec.name}) of {m} x {d} "
                f"support rows, {kernel.dual.shape[0]} coefficients and a "
                f"{centre.shape[0]}-d centre: retrain it"
            )
        heads.append(ContextHead(centre, kernel))
    return ContextStage(config, tuple(heads))


def encode_texts(spec: EncoderSpec, texts: Sequence[str], store_dir: Path | None) -> np.ndarray:
    """(n, d) contextual encodings of ``texts``, read from and added to the spec's cache file in
    ``store_dir``; raises :class:`NoContextStage` when the encoder cannot be loaded."""
    try:
        encoder = shared_encoder(spec)
    except EncoderUnavailable as e:
        raise NoContextStage(
            f"cannot train the contextual stage: {e}; train the fast stage alone instead"
        ) from None
    if store_dir is None:
        return encoder.encode(texts)
    cache = EncodingStore(store_dir / spec.cache_file)
    try:
        return encoder.encode(texts, cache)
    finally:
        cache.save()  # what was encoded before a failure is kept


def _uses_kernel(featurizer: Featurizer, config: TrainConfig) -> bool:
    return featurizer.wordvec is not None and config.kernel.weight > 0


def _vectors(featurizer: Featurizer, texts: Sequence[str]) -> np.ndarray:
    """(n, wordvec_dim) the L2-normalised mean word vector of each text: the kernel's input."""
    wv = featurizer.wordvec
    assert wv is not None  # callers check
    return np.stack([wv.mean(words(t)) for t in texts])


class ScorerHolder:
    """Thread-safe slot for the live scorer, so a retrained model is swapped in without restart."""

    def __init__(self, scorer: LearnedScorer | None = None, reason: str | None = None) -> None:
        self._lock = threading.Lock()
        self._scorer = scorer
        self._reason = reason or "no learned model is loaded"
        self._version = 0 if scorer is None else 1

    @classmethod
    def from_path(cls, path: str | Path) -> ScorerHolder:
        """A holder with the model at ``path`` (its version id stamped, see
        :func:`stamp_version`), or an empty one that says why it is empty."""
        try:
            return cls(stamp_version(LearnedScorer.load(path), path))
        except ModelFileError as e:
            return cls(None, reason=str(e))

    def get(self) -> LearnedScorer:
        """The live scorer; raises :class:`NoModelError` when none is loaded."""
        with self._lock:
            if self._scorer is None:
                raise NoModelError(self._reason)
            return self._scorer

    def swap(self, scorer: LearnedScorer) -> None:
        """Replaces the live scorer and bumps :attr:`version`."""
        if not isinstance(scorer, LearnedScorer):
            raise TypeError(f"expected a LearnedScorer, got {type(scorer).__name__}")
        with self._lock:
            self._scorer = scorer
            self._version += 1

    @property
    def loaded(self) -> bool:
        """Whether a scorer is loaded."""
        with self._lock:
            return self._scorer is not None

    @property
    def reason(self) -> str | None:
        """None when a scorer is loaded, else why not."""
        with self._lock:
            return None if self._scorer is not None else self._reason

    @property
    def version(self) -> int:
        """Increments on every swap; lets callers invalidate caches."""
        with self._lock:
            return self._version


def read_metadata(path: str | Path) -> dict:
    """A model file's metadata alone (no weights read); raises :class:`ModelFileError`."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return json.loads(z["metadata"].tobytes().decode("utf-8"))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise ModelFileError(
            f"model file {str(path)!r} is not a learned-scorer model: {e}"
        ) from None


def model_version(scorer: LearnedScorer) -> str:
    """The model's version id (``metadata["version_id"]``); "" when it has none."""
    return str(scorer.metadata.get(VERSION_KEY) or "")


def stamp_version(scorer: LearnedScorer, path: str | Path) -> LearnedScorer:
    """``scorer``, loaded from ``path``, with a version id if its file has none: "bundled" for
    the shipped model, else the file's name and the start of its sha256 (``current-1a2b3c4d``:
    the same file always gets the same id). Returns ``scorer`` (its metadata is changed)."""
    if not model_version(scorer):
        path = Path(path)
        if path.name == BUNDLED_MODEL:
            scorer.metadata[VERSION_KEY] = BUNDLED_VERSION
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
            stem = re.sub(r"[^a-z0-9]+", "-", path.stem.lower()).strip("-")[:40] or "model"
            scorer.metadata[VERSION_KEY] = f"{stem}-{digest}"
    return scorer


def bundled_model_path(settings: Settings) -> Path:
    """The PQPP model shipped under ``<assets>/learned/``."""
    return settings.assets_dir / "learned" / BUNDLED_MODEL


def default_model_path(settings: Settings) -> Path:
    """``settings.learned_model`` if set, else ``<learned_dir>/current.npz`` if present,
    else the bundled PQPP model."""
    if settings.learned_model is not None:
        return settings.learned_model
    current = settings.learned_dir / CURRENT_MODEL
    if current.is_file():
        return current
    return bundled_model_path(settings)


def default_encodings_dir(settings: Settings) -> Path:
    """Where training keeps its encoding caches: ``<cache>/learned/`` (one file per encoder)."""
    return settings.cache_dir / "learned"
