"""The inversion method: recover prompt text from a style's reference images with CLIP.

Two modes:

* ``fast`` (default, seconds): CLIP-Interrogator-style. Rank the style and global modifier
  banks by CLIP similarity to the references, then greedily append the modifier that raises
  the whole prompt's similarity most, until nothing helps, the budget is full or
  ``max_modifiers`` are in.
* ``pez`` (minutes on CPU): "Hard Prompts Made Easy" (Wen et al., 2023). Optimise continuous
  token embeddings, projecting them to their nearest vocabulary tokens at every step and
  applying the gradient taken at the projection to the continuous ones (straight-through).

The result is the user's prompt + ", " + the recovered text, cut to the token budget.

This module holds the method (mode choice, reference images, disk cache); the modes themselves
are in ``interrogate.py`` (fast) and ``pez.py`` (PEZ), their shared argument checks and
:class:`InversionInputError` in ``inversion_args.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from pipelines.augment.base import AugmentContext, MethodUnavailable
from pipelines.augment.clip_backend import LazyClip
from pipelines.augment.inversion.args import (
    InversionInputError,
    Progress,
    _check_int,
    _check_positive,
)
from pipelines.augment.inversion.interrogate import (
    _mean_similarity,
    _occurs,
    interrogate,
    join_prompt,
)
from pipelines.augment.inversion.pez import pez_invert
from pipelines.core.trace import Candidate, TraceStep

if TYPE_CHECKING:
    from PIL import Image

    from pipelines.augment.clip_backend import ClipBackend
    from pipelines.styles.catalog import Style
    from pipelines.styles.modifiers import Modifier

log = logging.getLogger(__name__)

MODES = ("fast", "pez")
CACHE_VERSION = 1  # bump when the cached record or the algorithms change


def load_targets(style: Style, context: AugmentContext) -> list[Image.Image]:
    """RGB target images: the style's reference files, then ``context.reference_images``."""
    from PIL import Image, UnidentifiedImageError

    images = []
    for path in style.reference_images():
        try:
            with Image.open(path) as im:
                images.append(im.convert("RGB"))
        except (OSError, UnidentifiedImageError) as exc:
            raise InversionInputError(
                f"reference image {path} cannot be read ({exc}): use a PNG, JPEG or WebP file"
            ) from None
    for i, im in enumerate(context.reference_images):
        if not isinstance(im, Image.Image):
            raise InversionInputError(
                f"reference_images[{i}] is a {type(im).__name__}: use PIL images"
            )
        images.append(im.convert("RGB"))
    return images


def targets_label(n_images: int) -> str:
    """What the CLIP target was, in the trace's words."""
    if n_images:
        return f"{n_images} reference image(s)"
    return "the style's description (no reference images yet)"


def image_digest(image: Image.Image) -> str:
    """sha256 of an image's RGB pixels and size: the cache key part, never the image itself."""
    from pipelines.faces.photo import image_hash

    return image_hash(image.convert("RGB"))


@dataclass(frozen=True)
class PezConfig:
    """The PEZ settings the method runs :func:`pez_invert` with; validated on creation."""

    steps: int = 300
    prompt_len: int = 16
    lr: float = 0.1
    weight_decay: float = 0.1
    batch_size: int = 1
    num_prompts: int = 1

    def __post_init__(self) -> None:
        _check_int("steps", self.steps, 1, 100_000)
        _check_int("prompt_len", self.prompt_len, 1, 75)
        _check_int("batch_size", self.batch_size, 1, 100_000)
        _check_int("num_prompts", self.num_prompts, 1, 256)
        _check_positive("lr", self.lr)
        _check_positive("weight_decay", self.weight_decay, allow_zero=True)


class InversionMethod:
    """Augmentation method "inversion": prompt text recovered from reference images."""

    name = "inversion"
    summary = "words recovered from the style's example images"
    uses_references = True  # the style's reference images are what it inverts
    pools: tuple[str, ...] = ()
    description = (
        "Text recovered from the style's reference images with CLIP: the bank modifiers that "
        "match them best (fast) or an optimised hard prompt (PEZ)."
    )

    def __init__(
        self,
        clip: LazyClip,
        cache_dir: Path,
        mode: str = "fast",
        pez_steps: int = 300,
        *,
        pez: PezConfig | None = None,
        max_modifiers: int = 8,
        pool: int = 48,
        max_cache_entries: int = 1000,
    ) -> None:
        if mode not in MODES:
            raise InversionInputError(
                f"mode={mode!r} is not allowed: use one of {', '.join(MODES)}"
            )
        _check_int("pez_steps", pez_steps, 1, 100_000)
        _check_int("max_modifiers", max_modifiers, 0, 64)
        _check_int("pool", pool, 1, 10_000)
        _check_int("max_cache_entries", max_cache_entries, 1, 1_000_000)
        self.cache_dir = Path(cache_dir)
        self.mode = mode
        self.pez = pez or PezConfig(steps=pez_steps)  # a full config wins over pez_steps
        self.max_modifiers = max_modifiers
        self.pool = pool
        self.max_cache_entries = max_cache_entries  # records are ~2 kB: 1000 is ~2 MB on disk
        self._clip = clip  # shared with the ensemble: loaded once
        self._run_lock = threading.Lock()  # one optimisation at a time: they saturate the CPU

    # -- availability

    def clip(self) -> ClipBackend:
        """The loaded CLIP; raises ClipUnavailable (a MethodUnavailable) with the reason."""
        return self._clip.get()

    def unavailable_reason(self) -> str | None:
        """None when CLIP loads, else why not (loads it on the first call)."""
        return self._clip.reason()

    def targets(self, style: Style, context: AugmentContext) -> list[Image.Image]:
        """The reference images the prompt is recovered from (see :func:`load_targets`)."""
        return load_targets(style, context)

    def cache_key(
        self,
        model_id: str,
        images: Sequence[Image.Image],
        base_prompt: str,
        style: Style,
        context: AugmentContext,
        text_target: str | None = None,
    ) -> str:
        """sha256 over everything the recovered text depends on."""
        parts: dict[str, Any] = {
            "v": CACHE_VERSION,
            "model": model_id,
            "images": [image_digest(im) for im in images],
            "mode": self.mode,
        }
        if text_target is not None:
            parts["text_target"] = text_target
        if self.mode == "pez":
            parts |= {"pez": asdict(self.pez), "seed": context.seed}
        else:  # deterministic: the seed does not matter, the bank, prompt and budget do
            bank = self._bank(style, context)
            parts |= {
                "max_modifiers": self.max_modifiers,
                "pool": self.pool,
                "bank": [(m.text, m.group, m.source) for m in bank],
                "base_prompt": base_prompt,
                "budget": [context.budget.max_tokens, context.budget.exact],
            }
        blob = json.dumps(parts, sort_keys=True, ensure_ascii=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _read_cache(self, key: str) -> dict[str, Any] | None:
        path = self.cache_dir / f"{key}.json"
        try:
            record = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # a corrupt entry is recomputed, not fatal
            log.warning("ignoring unreadable inversion cache %s: %s", path, exc)
            return None
        with contextlib.suppress(OSError):  # evicted meanwhile, read-only disk: still a hit
            os.utime(path)  # the least recently *used* records are the ones evicted
        return record

    def _write_cache(self, key: str, record: dict[str, Any]) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.cache_dir, prefix=f".{key[:16]}-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(tmp, self.cache_dir / f"{key}.json")  # atomic: readers never see half a file
        try:
            self._evict()
        except OSError as exc:  # best effort: never lose the result just computed
            log.warning("inversion cache eviction in %s failed: %s", self.cache_dir, exc)

    def _evict(self) -> None:
        """Keep the ``max_cache_entries`` most recently used records; a Space's disk is small."""
        entries = []
        for path in self.cache_dir.glob("*.json"):
            if path.name.startswith("."):  # another writer's temp file, not yet a record
                continue
            try:
                entries.append((path.stat().st_mtime, path))
            except FileNotFoundError:  # another process evicted it first
                continue
        entries.sort(reverse=True)
        for _, path in entries[self.max_cache_entries :]:
            path.unlink(missing_ok=True)

    @staticmethod
    def _bank(style: Style, context: AugmentContext) -> tuple[Modifier, ...]:
        return context.catalog.modifiers_for(style)

    # -- augment

    def augment(self, base_prompt: str, style: Style, context: AugmentContext) -> list[Candidate]:
        """One candidate: ``base_prompt`` + the text recovered in this mode (cached on disk).

        Without reference images the style's own description is the CLIP target (text to
        text), and the trace says so.
        """
        images = self.targets(style, context)
        text_target = None if images else style.description
        if not images and not text_target:
            raise MethodUnavailable(f"{style.name} has no reference images and no description")
        clip = self.clip()
        report = context.progress or (lambda f, m: None)
        key = self.cache_key(clip.model_id, images, base_prompt, style, context, text_target)

        def target_features() -> torch.Tensor:  # (n, d), L2-normalised
            return clip.image_features(images) if images else clip.text_features([text_target])

        features = None
        record = self._read_cache(key)
        cached = record is not None
        if record is None:
            with self._run_lock:
                record = self._read_cache(key)  # another thread may have just computed it
                cached = record is not None
                if record is None:
                    t0 = time.perf_counter()
                    features = target_features()
                    if self.mode == "pez":
                        record = self._run_pez(clip, features, context.seed, report)
                    else:
                        record = self._run_fast(clip, features, base_prompt, style, context, report)
                    record["seconds"] = round(time.perf_counter() - t0, 3)
                    self._write_cache(key, record)
        if cached:
            report(1.0, "inversion result from cache")
        if record["mode"] == "pez":
            # the recovered text does not depend on the base prompt; its score does
            prompt = context.budget.truncate(join_prompt(base_prompt, record["recovered"]))
            if features is None:
                features = target_features()
            score = float(_mean_similarity(clip, features, [prompt])[0])
            trace = self._pez_trace(record, prompt, targets_label(len(images)))
        else:
            prompt, score = record["prompt"], record["similarity"]
            trace = self._fast_trace(record, targets_label(len(images)))
        if not images:  # say it plainly: no reference image was used
            label = targets_label(0)
            trace = (
                TraceStep(label, "CLIP target", f"the text was recovered from {label}"),
                *trace,
            )
        if base_prompt.strip():
            trace = (TraceStep(base_prompt.strip(), "user", "the base prompt as typed"), *trace)
        meta = {k: v for k, v in record.items() if k not in ("contributions", "words", "chosen")}
        meta |= {
            "references": len(images),
            "target": "images" if images else "style description",
            "cached": cached,
            "modifiers": record.get("modifiers", []),
        }
        return [Candidate(prompt=prompt, method=self.name, score=score, trace=trace, meta=meta)]

    def _run_pez(
        self, clip: ClipBackend, features: torch.Tensor, seed: int, report: Progress
    ) -> dict[str, Any]:
        c = self.pez
        res = pez_invert(
            clip,
            features,
            prompt_len=c.prompt_len,
            steps=c.steps,
            lr=c.lr,
            weight_decay=c.weight_decay,
            seed=seed,
            batch_size=c.batch_size,
            num_prompts=c.num_prompts,
            progress=report,
            print_every=max(1, c.steps // 20),
        )
        words = res.text.split()
        contributions: list[float] = []
        if len(words) > 1:  # leave-one-out: how much each word adds to the recovered text
            full = float(_mean_similarity(clip, features, [res.text])[0])
            drop = [" ".join(words[:i] + words[i + 1 :]) for i in range(len(words))]
            contributions = [
                round(full - float(s), 5) for s in _mean_similarity(clip, features, drop)
            ]
        return {
            "mode": "pez",
            "recovered": res.text,
            "similarity": res.similarity,
            "initial_similarity": res.initial_similarity,
            "token_ids": list(res.token_ids),
            "steps": res.steps,
            "words": words,
            "contributions": contributions,
        }

    def _run_fast(
        self,
        clip: ClipBackend,
        features: torch.Tensor,
        base_prompt: str,
        style: Style,
        context: AugmentContext,
        report: Progress,
    ) -> dict[str, Any]:
        res = interrogate(
            clip,
            features,
            self._bank(style, context),
            context.budget,
            self.max_modifiers,
            base_prompt=base_prompt,
            pool=self.pool,
            progress=report,
        )
        return {
            "mode": "fast",
            "recovered": res.text,
            "prompt": res.prompt,
            "similarity": res.similarity,
            "base_similarity": res.base_similarity,
            "modifiers": [c.text for c in res.chosen],
            "chosen": [asdict(c) for c in res.chosen],
            "evaluated": res.evaluated,
        }

    @staticmethod
    def _pez_trace(record: dict[str, Any], prompt: str, targets: str) -> tuple[TraceStep, ...]:
        steps = [
            TraceStep(
                record["recovered"],
                "pez",
                f"CLIP similarity {record['similarity']:.3f} to {targets} after "
                f"{record['steps']} PEZ steps (random start {record['initial_similarity']:.3f})",
            )
        ]
        for word, c in zip(record["words"], record["contributions"], strict=False):
            if _occurs(word, prompt):
                steps.append(TraceStep(word, "pez", f"dropping it changes similarity by {-c:+.3f}"))
        return tuple(steps)

    @staticmethod
    def _fast_trace(record: dict[str, Any], targets: str) -> tuple[TraceStep, ...]:
        return tuple(
            TraceStep(
                c["text"],
                "global bank" if c["source"] == "global" else "style bank",
                f"raises CLIP similarity to {targets} by {c['gain']:+.3f} "
                f"(to {c['similarity']:.3f})",
            )
            for c in record["chosen"]
        )
