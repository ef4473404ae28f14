"""PickScore and HPSv2 through transformers' ``CLIPModel``: the published weights, loaded once on
first use, scoring a row's images against one text in one batch.

Both are CLIP-H models fine-tuned on people's choices between images of one prompt; their score
is the cosine of the image and text embeddings, times ``logit_scale.exp()`` for PickScore (as
its authors publish it, ~18-23 for real images) and as is for HPSv2 (~0.2-0.3). Scores compare
images of the same text: a row's outputs, all scored against the same text.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from pipelines.core.errors import InputError, UnavailableError
from pipelines.core.hub import hub_offline
from pipelines.core.measures import PREFERENCE_MODELS

if TYPE_CHECKING:
    from PIL import Image
    from transformers import CLIPModel

log = logging.getLogger(__name__)

IMAGE_BATCH = 8  # images per forward pass: bounds activation memory of CLIP-H on a CPU
TEXT_CACHE = 1024  # memoised text features per scorer (1024 x 1024 floats = 4 MB for CLIP-H)


class PreferenceUnavailable(UnavailableError):
    """A preference measure cannot run here (turned off, weights missing); says why."""


class PreferenceInputError(InputError):
    """Bad input to a scorer (no images, an unknown measure); names the value."""


@dataclass(frozen=True)
class PreferenceSource:
    """Where one preference measure loads from, or why it does not run here.

    ``local_files_only``: None follows ``HF_HUB_OFFLINE``; True never touches the network.
    ``off``: the reason the measure does not run in this deployment ("" = it runs).
    """

    name: str
    model_id: str
    processor_id: str
    local_files_only: bool | None = None
    off: str = ""
    allow_unverified: bool = False  # BECOME_UNVERIFIED_WEIGHTS (the tiny engine's own files)

    def __post_init__(self) -> None:
        if self.name not in PREFERENCE_MODELS:
            raise PreferenceInputError(
                f"unknown preference measure {self.name!r}: use one of "
                f"{', '.join(PREFERENCE_MODELS)}"
            )


@dataclass
class PreferenceScorer:
    """A loaded preference model and its processor; :meth:`score` is its published score."""

    name: str
    model: CLIPModel
    processor: Any  # CLIPProcessor: tokenizer + image processor
    model_id: str
    device: torch.device
    logit_scaled: bool
    _texts: OrderedDict[str, torch.Tensor] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def judge(self) -> str:
        """What the output's measure names as its judge: the weights' id."""
        path = Path(self.model_id)
        return f"{path.parent.name}/{path.name}" if path.is_dir() else self.model_id

    @torch.no_grad()
    def score(self, images: Sequence[Image.Image], text: str) -> list[float]:
        """The preference score of each image for ``text`` (higher = people prefer it)."""
        if len(images) == 0:
            raise PreferenceInputError(f"{self.name} needs at least one image, got none")
        if not isinstance(text, str):
            raise PreferenceInputError(f"{self.name} scores against a text, got {text!r}")
        dtype = self.model.text_projection.weight.dtype
        text_emb = self._text_features(text)  # (1, d)
        chunks = []
        for i in range(0, len(images), IMAGE_BATCH):
            rgb = [im.convert("RGB") for im in images[i : i + IMAGE_BATCH]]
            pixels = self.processor(images=rgb, return_tensors="pt")["pixel_values"]
            out = self.model.get_image_features(pixel_values=pixels.to(self.device, dtype))
            chunks.append(_normalise(out.pooler_output.float()))  # (b, d)
        scores = (torch.cat(chunks) @ text_emb.T).squeeze(-1)  # (n,) cosines
        if self.logit_scaled:
            scores = scores * self.model.logit_scale.float().exp()
        return [float(s) for s in scores.cpu()]

    def _text_features(self, text: str) -> torch.Tensor:
        """(1, d) normalised features of ``text``, memoised (:data:`TEXT_CACHE` texts): a deck
        scores every selfie and seed of a (prompt, style) against the same text."""
        with self._lock:
            hit = self._texts.get(text)
            if hit is not None:
                self._texts.move_to_end(text)
                return hit
        tokens = self.processor(
            text=[text], padding=True, truncation=True, max_length=77, return_tensors="pt"
        ).to(self.device)
        out = self.model.get_text_features(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        )
        features = _normalise(out.pooler_output.float())
        with self._lock:
            self._texts[text] = features
            while len(self._texts) > TEXT_CACHE:
                self._texts.popitem(last=False)
        return features


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


# ----------------------------------------------------------------------------- loading


def load_preference(
    source: PreferenceSource, device: str | torch.device = "auto"
) -> PreferenceScorer:
    """Load ``source``'s model and processor (raises :class:`PreferenceUnavailable` with the
    reason when it is off or the weights are neither here nor downloadable).

    A hub id is read from the local cache first and downloaded only when the source allows it.
    Half precision on a GPU (CLIP-H is 1B parameters: 2 GB instead of 4), float32 on a CPU.
    """
    from pipelines.models.runtime import pick_device

    if source.off:
        raise PreferenceUnavailable(source.off)
    dev = pick_device(device) if isinstance(device, str) else torch.device(device)
    dtype = torch.float16 if dev.type == "cuda" else torch.float32
    only_local = hub_offline() if source.local_files_only is None else source.local_files_only
    checked = _checked(source, only_local)  # the checked folder when the weights are pinned
    only_local = only_local or bool(checked.local_files_only)
    attempts = [True] if only_local else [True, False]  # the cache first: no network when cached
    last: Exception | None = None
    for local in attempts:
        try:
            model, processor = _from_pretrained(checked, local, dtype)
            break
        except (OSError, ValueError) as exc:
            last = exc
    else:
        where = "here (offline)" if only_local else "here or on the Hub"
        raise PreferenceUnavailable(
            f"{source.name} weights {source.model_id} (processor {source.processor_id}) are not "
            f"available {where}: {type(last).__name__}; set BECOME_{source.name.upper()}_MODEL to "
            "a local folder, connect to the Hub, or leave it out of BECOME_PREFERENCE_MEASURES"
        )
    return PreferenceScorer(
        name=source.name,
        model=model.to(dev).eval(),
        processor=processor,
        model_id=source.model_id,
        device=dev,
        logit_scaled=PREFERENCE_MODELS[source.name].logit_scaled,
    )


def _checked(source: PreferenceSource, only_local: bool) -> PreferenceSource:
    """``source`` with its weights checked against the pin table (:mod:`pipelines.weights`):
    pointed at the checked folder when pinned, as it was when unverified weights are allowed;
    else :class:`PreferenceUnavailable` saying why."""
    from pipelines.weights import WeightsRefused, locate

    setting = f"BECOME_{source.name.upper()}_MODEL"
    try:
        weights = locate(
            source.model_id,
            default=PREFERENCE_MODELS[source.name].model_id,
            allow_unverified=source.allow_unverified,
            offline=only_local,
            what=f"{source.name} ({setting})",
        )
    except WeightsRefused as exc:
        raise PreferenceUnavailable(str(exc)) from None
    if not weights.verified:
        return source
    return replace(source, model_id=weights.source, local_files_only=True)


def _from_pretrained(source: PreferenceSource, local: bool, dtype: torch.dtype) -> tuple[Any, Any]:
    from transformers import CLIPModel, CLIPProcessor

    for where in (source.model_id, source.processor_id):
        path = Path(where).expanduser()
        if where.startswith(("/", ".", "~")) and not path.is_dir():
            raise OSError(f"no folder {where}")  # a path that is not there: never ask the Hub
    processor = CLIPProcessor.from_pretrained(source.processor_id, local_files_only=local)
    model = CLIPModel.from_pretrained(source.model_id, local_files_only=local, dtype=dtype)
    model.requires_grad_(False)
    return model, processor


class LazyPreference:
    """Loads a preference scorer on first use, once; remembers a failure (with its reason) so
    a missing model is not looked for again on every row. Thread-safe."""

    def __init__(
        self, source: PreferenceSource, loader: Callable[[PreferenceSource], PreferenceScorer]
    ) -> None:
        self.source = source
        self._loader = loader
        self._scorer: PreferenceScorer | None = None
        self._reason: str | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """The measure's name (``pickscore``, ``hpsv2``)."""
        return self.source.name

    @property
    def loaded(self) -> bool:
        """Whether the scorer has been loaded."""
        return self._scorer is not None

    def get(self) -> PreferenceScorer:
        """The scorer, or :class:`PreferenceUnavailable` with the (remembered) reason."""
        with self._lock:
            if self._scorer is None:
                if self._reason is not None:
                    raise PreferenceUnavailable(self._reason)
                try:
                    self._scorer = self._loader(self.source)
                except PreferenceUnavailable as exc:
                    self._reason = str(exc)
                    raise
                except Exception as exc:  # a broken model must cost its measure, not the app
                    log.exception("%s could not be loaded", self.name)
                    self._reason = f"{self.name} could not be loaded: {type(exc).__name__}: {exc}"
                    raise PreferenceUnavailable(self._reason) from exc
            return self._scorer


def preference_judges(sources: Sequence[PreferenceSource]) -> dict[str, LazyPreference]:
    """A lazy scorer per source, keyed by measure name (nothing loads until first used)."""
    return {s.name: LazyPreference(s, load_preference) for s in sources}
