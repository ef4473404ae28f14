"""CLIP (transformers) for the inversion and ensemble methods: features, vocabulary, embeddings.

The default model is ``openai/clip-vit-large-patch14``, whose text tower is SD-1.5's text
encoder, so a prompt that is close to an image in this CLIP space is one SD-1.5 understands.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from pipelines.augment.base import MethodUnavailable
from pipelines.core.errors import InputError
from pipelines.core.hub import hub_offline

if TYPE_CHECKING:
    from PIL import Image
    from transformers import CLIPModel, CLIPTokenizer

log = logging.getLogger(__name__)

DEFAULT_CLIP_MODEL = "openai/clip-vit-large-patch14"
TEXT_BATCH = 64  # texts per forward pass; bounds memory on CPU for CLIP-L
TEXT_CACHE = 8192  # memoised text features per backend (8192 x 768 floats = 25 MB)


class ClipUnavailable(MethodUnavailable):
    """CLIP weights cannot be loaded here; the message says what to do."""


class ClipInputError(InputError):
    """Bad input to a :class:`ClipBackend` call (empty list, wrong shape, ...)."""


@dataclass
class ClipBackend:
    """A loaded CLIP model with the few operations prompt inversion needs.

    All features are L2-normalised, so a dot product is a cosine similarity.
    """

    model: CLIPModel
    tokenizer: CLIPTokenizer
    processor: Any  # image processor: PIL -> pixel_values
    model_id: str
    device: torch.device
    _text_cache: OrderedDict[str, torch.Tensor] = field(default_factory=OrderedDict, repr=False)
    _cache_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the model's weights are in."""
        return self.model.text_projection.weight.dtype

    @property
    def embed_dim(self) -> int:
        """Size of the joint image-text space (projection_dim)."""
        return int(self.model.text_projection.out_features)

    @property
    def token_embedding(self) -> torch.Tensor:
        """The text tower's token embedding matrix, (vocab, hidden)."""
        return self.model.text_model.embeddings.token_embedding.weight

    @property
    def max_length(self) -> int:
        """The text encoder's token limit, start and end tokens included."""
        return int(self.model.text_model.embeddings.position_embedding.num_embeddings)

    @torch.no_grad()
    def image_features(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """(n, d) normalised image features of RGB images."""
        if len(images) == 0:
            raise ClipInputError("image_features needs at least one image, got none")
        rgb = [im.convert("RGB") for im in images]
        pixels = self.processor(images=rgb, return_tensors="pt")["pixel_values"]
        pixels = pixels.to(self.device, self.dtype)  # (n, 3, H, W)
        out = self.model.get_image_features(pixel_values=pixels)
        return _normalise(out.pooler_output.float())  # (n, d)

    def text_features(self, texts: Sequence[str]) -> torch.Tensor:
        """(n, d) normalised text features; texts longer than the encoder are truncated.

        Features are memoised per text (LRU, :data:`TEXT_CACHE` entries): fast-mode inversion
        and the ensemble re-encode the same modifier bank and prompts on every request.
        """
        if isinstance(texts, str) or len(texts) == 0:
            raise ClipInputError(f"text_features needs a non-empty list of texts, got {texts!r}")
        texts = [str(t) for t in texts]
        with self._cache_lock:
            known = {t: self._text_cache[t] for t in texts if t in self._text_cache}
            for t in known:
                self._text_cache.move_to_end(t)
        todo = list(dict.fromkeys(t for t in texts if t not in known))
        if todo:
            fresh = self._encode_texts(todo)  # (m, d)
            with self._cache_lock:
                for t, f in zip(todo, fresh, strict=True):
                    known[t] = self._text_cache[t] = f
                while len(self._text_cache) > TEXT_CACHE:
                    self._text_cache.popitem(last=False)
        return torch.stack([known[t] for t in texts])  # (n, d)

    @torch.no_grad()
    def _encode_texts(self, texts: list[str]) -> torch.Tensor:
        chunks = []
        for i in range(0, len(texts), TEXT_BATCH):
            batch = self.tokenizer(
                texts[i : i + TEXT_BATCH],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            out = self.model.get_text_features(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            )
            chunks.append(out.pooler_output.float())
        return _normalise(torch.cat(chunks))  # (m, d)

    def text_features_from_embeds(
        self, inputs_embeds: torch.Tensor, eos_index: torch.Tensor
    ) -> torch.Tensor:
        """(b, d) normalised features of token embeddings, differentiable (for PEZ).

        ``inputs_embeds`` (b, T, hidden) are token embeddings *before* position embeddings,
        start and end tokens included; ``eos_index`` (b,) is where each sequence's end token
        is, whose final hidden state CLIP pools. transformers' ``CLIPTextModel.forward`` only
        takes ``input_ids``, so this mirrors it step by step.
        """
        from transformers.masking_utils import create_causal_mask

        if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != self.token_embedding.shape[1]:
            raise ClipInputError(
                f"inputs_embeds must be (batch, tokens, {self.token_embedding.shape[1]}), "
                f"got {tuple(inputs_embeds.shape)}"
            )
        tm = self.model.text_model
        hidden = tm.embeddings(inputs_embeds=inputs_embeds)  # + position embeddings
        mask = create_causal_mask(
            config=tm.config, inputs_embeds=hidden, attention_mask=None, past_key_values=None
        )
        hidden = tm.encoder(inputs_embeds=hidden, attention_mask=mask, is_causal=True)
        hidden = tm.final_layer_norm(hidden.last_hidden_state)  # (b, T, hidden)
        pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), eos_index]
        return _normalise(self.model.text_projection(pooled).float())  # (b, d)

    def special_token_ids(self) -> set[int]:
        """Ids of the tokenizer's special tokens (never part of a recovered prompt)."""
        return set(self.tokenizer.all_special_ids)


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


# ----------------------------------------------------------------------------- loading

_loaded: dict[tuple[str, bool | None, str, bool], ClipBackend] = {}
_load_lock = threading.Lock()


def _from_pretrained(model_id: str, local_only: bool, device: torch.device) -> ClipBackend:
    from transformers import AutoImageProcessor, CLIPModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(model_id, local_files_only=local_only)
    processor = AutoImageProcessor.from_pretrained(model_id, local_files_only=local_only)
    # float32 everywhere: PEZ's nearest-neighbour projection and AdamW on 768-d embeddings
    # are sensitive to half precision, and CLIP-L is small next to SD-1.5.
    model = CLIPModel.from_pretrained(model_id, local_files_only=local_only, dtype=torch.float32)
    model.requires_grad_(False)  # PEZ differentiates w.r.t. embeddings, never the weights
    return ClipBackend(model.to(device).eval(), tokenizer, processor, model_id, device)


def load_clip(
    model_id: str = DEFAULT_CLIP_MODEL,
    *,
    local_files_only: bool | None = None,
    device: str | torch.device | None = None,
    allow_unverified: bool = False,
) -> ClipBackend:
    """Load CLIP once per (model, locality, device); later calls return the same backend.

    ``model_id`` is a hub id or a local folder. ``local_files_only=None`` follows
    ``HF_HUB_OFFLINE``: offline it only reads the local cache, online it tries the cache first
    and then the Hub. The default model loads only from files that match its pins
    (:mod:`pipelines.weights`); another model or folder loads only with ``allow_unverified``.
    ``device=None`` picks cuda when available. Raises :class:`ClipUnavailable` when the
    weights cannot be found or are refused.
    """
    from pipelines.models.runtime import pick_device

    model_id = str(model_id)
    try:
        dev = pick_device("auto") if device is None else torch.device(device)
    except RuntimeError:
        raise ClipInputError(
            f"device={device!r} is not a torch device: use cpu, cuda, ..."
        ) from None
    key = (model_id, local_files_only, str(dev), allow_unverified)
    with _load_lock:  # one load at a time: two threads must not both read 1.7 GB
        if key in _loaded:
            return _loaded[key]
        backend = _load_uncached(model_id, local_files_only, dev, allow_unverified)
        _loaded[key] = backend
        return backend


def _load_uncached(
    model_id: str, local_files_only: bool | None, dev: torch.device, allow_unverified: bool
) -> ClipBackend:
    from pipelines.weights import WeightsRefused, locate

    path = Path(model_id).expanduser()
    if not path.is_dir() and (model_id.startswith(("/", ".", "~")) or path.exists()):
        raise ClipUnavailable(
            f"CLIP model folder {model_id} does not exist; set BECOME_CLIP_MODEL to a local "
            f"folder holding a CLIP model or to a hub id such as {DEFAULT_CLIP_MODEL}"
        )
    only_local = hub_offline() if local_files_only is None else local_files_only
    try:
        weights = locate(
            model_id,
            default=DEFAULT_CLIP_MODEL,
            allow_unverified=allow_unverified,
            offline=only_local,
            what="CLIP (BECOME_CLIP_MODEL)",
        )
    except WeightsRefused as exc:
        raise ClipUnavailable(str(exc)) from None
    if weights.verified or path.is_dir():
        try:
            return _from_pretrained(weights.source, True, dev)
        except (OSError, ValueError) as exc:
            raise ClipUnavailable(
                f"the folder {model_id} does not hold a loadable CLIP model ({exc}); set "
                "BECOME_CLIP_MODEL to a folder written by CLIPModel.save_pretrained or to a hub id"
            ) from None
    attempts = [True] if only_local else [True, False]  # cache first: no network when cached
    last: Exception | None = None
    for local in attempts:
        try:
            return _from_pretrained(model_id, local, dev)
        except (OSError, ValueError) as exc:
            last = exc
    where = "locally" if only_local else "locally or on the Hub"
    raise ClipUnavailable(
        f"CLIP weights {model_id} are not available {where}; set BECOME_CLIP_MODEL to a "
        f"local folder or connect to the Hub ({type(last).__name__})"
    )


class LazyClip:
    """Calls a CLIP loader on first use, once; remembers a failure so the UI never retries it.

    Thread-safe: concurrent first calls wait for one load.
    """

    def __init__(self, loader: Callable[[], ClipBackend]) -> None:
        self._loader = loader
        self._clip: ClipBackend | None = None
        self._reason: str | None = None
        self._lock = threading.Lock()

    def get(self) -> ClipBackend:
        """The backend, or :class:`ClipUnavailable` with the (remembered) reason."""
        with self._lock:
            if self._clip is None:
                if self._reason is not None:
                    raise ClipUnavailable(self._reason)
                try:
                    self._clip = self._loader()
                except (MethodUnavailable, OSError) as exc:
                    self._reason = str(exc)
                    raise ClipUnavailable(self._reason) from exc
                except Exception as exc:  # a broken loader must disable the method, not the app
                    log.exception("CLIP loader failed")
                    self._reason = f"CLIP could not be loaded: {type(exc).__name__}: {exc}"
                    raise ClipUnavailable(self._reason) from exc
            return self._clip

    def reason(self) -> str | None:
        """None when CLIP loads, else why not (loads it on the first call)."""
        try:
            self.get()
        except ClipUnavailable as exc:
            return str(exc)
        return None
