"""One comparison: face -> each method's prompt -> one batched render -> a result the UI shows.

The service is shared by all requests; everything it holds is read-only or guards itself
(the face cache, the pipeline lock, the scorer holder).
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pipelines.augment.base import (
    AugmentContext,
    Candidate,
    MethodRegistry,
    MethodUnavailable,
    TraceStep,
)
from pipelines.augment.tokens import TokenBudget
from pipelines.engines import Engine, RenderJob
from pipelines.errors import InputError
from pipelines.face import load_image
from pipelines.settings import (
    GUIDANCE_RANGE,
    IDENTITY_RANGE,
    MAX_SEED,
    SIZE_RANGE,
    STEPS_RANGE,
    Settings,
)

if TYPE_CHECKING:
    from PIL import Image

    from pipelines.styles import StyleCatalog

log = logging.getLogger(__name__)

CLIP_METHODS = {"inversion", "ensemble"}  # methods that use reference images as CLIP targets
MAX_PROMPT_CHARS = 500

# progress(fraction 0..1, message)
Progress = Callable[[float, str], None]


class CompareInputError(InputError):
    """A comparison request with a value the app cannot use; the message names it."""


class UnknownComparisonError(CompareInputError):
    """A rating names a comparison this server no longer (or never) rendered."""


@dataclass
class MethodOutput:
    """One column of the side-by-side row."""

    method: str
    image: Image.Image | None = None
    prompt: str | None = None  # exactly what was rendered
    negative_prompt: str | None = None
    score: float | None = None
    trace: tuple[TraceStep, ...] = ()
    candidates: list[Candidate] = field(default_factory=list)
    tokens: int | None = None
    error: str | None = None  # why this method produced no image
    image_hash: str | None = None  # sha256 of the image's PNG, set when it is first rated


@dataclass
class ComparisonResult:
    comparison_id: str
    style_id: str
    base_prompt: str
    seed: int
    outputs: list[MethodOutput]
    face_crop: Image.Image
    num_faces: int
    det_score: float
    engine: str
    engine_reason: str
    model_ids: dict[str, str]
    params: dict[str, Any]
    timings: dict[str, float]

    @property
    def face_notice(self) -> str:
        if self.num_faces > 1:
            return f"{self.num_faces} faces found; using the largest."
        return "1 face found."

    def to_json(self) -> dict[str, Any]:
        """Everything but the images, for the API and the feedback store."""
        return {
            "comparison_id": self.comparison_id,
            "style": self.style_id,
            "base_prompt": self.base_prompt,
            "seed": self.seed,
            "engine": self.engine,
            "engine_reason": self.engine_reason,
            "model_ids": self.model_ids,
            "params": self.params,
            "faces_found": self.num_faces,
            "face_score": round(self.det_score, 4),
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "outputs": [
                {
                    "method": o.method,
                    "prompt": o.prompt,
                    "negative_prompt": o.negative_prompt,
                    "score": o.score,
                    "tokens": o.tokens,
                    "error": o.error,
                    "rendered": o.image is not None,
                    "trace": [
                        {"part": t.part, "source": t.source, "reason": t.reason} for t in o.trace
                    ],
                }
                for o in self.outputs
            ],
        }


class RecentComparisons:
    """The last N comparisons, in memory only, so raters can vote on what they saw.

    The selfie's face crop is dropped: only generated outputs are kept, and only until evicted.
    """

    def __init__(self, capacity: int = 96) -> None:  # ~96 rows x 5 images at 512 px: ~400 MB
        self._items: OrderedDict[str, ComparisonResult] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def add(self, result: ComparisonResult) -> None:
        slim = _without_face(result)
        with self._lock:
            self._items[result.comparison_id] = slim
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)

    def get(self, comparison_id: str) -> ComparisonResult:
        with self._lock:
            found = self._items.get(comparison_id)
        if found is None:
            raise UnknownComparisonError(
                f"comparison {comparison_id!r} is not in memory any more (the app restarted or "
                "many comparisons ran since): generate it again, then rate"
            )
        return found


def _without_face(result: ComparisonResult) -> ComparisonResult:
    from PIL import Image

    return replace(result, face_crop=Image.new("RGB", (1, 1)))


class ComparisonService:
    """Runs comparisons for the UI, the API and the benchmarks."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        catalog: StyleCatalog,
        registry: MethodRegistry,
        rated_targets: Callable[[str], list[Image.Image]] | None = None,
    ) -> None:
        self.settings = settings
        # top-rated consented outputs of a style: extra targets for the CLIP-based methods
        self.rated_targets = rated_targets
        self.engine = engine
        self.catalog = catalog
        self.registry = registry
        self.recent = RecentComparisons()
        self._budget: TokenBudget | None = None
        self._budget_lock = threading.Lock()

    @property
    def budget(self) -> TokenBudget:
        """The live text encoder's 77-token budget (estimated when no tokenizer is available)."""
        if self._budget is None:
            with self._budget_lock:
                if self._budget is None:
                    self._budget = TokenBudget(self.engine.tokenizer_loader())
        return self._budget

    # ------------------------------------------------------------------ validation

    def _check(
        self,
        base_prompt: str,
        methods: Sequence[str],
        seed: int | None,
        steps: int,
        guidance: float,
        identity_strength: float | None,
        size: int,
    ) -> None:
        if not base_prompt or not base_prompt.strip():
            raise CompareInputError("The base prompt is empty: type what the portrait should show.")
        if len(base_prompt) > MAX_PROMPT_CHARS:
            raise CompareInputError(
                f"The base prompt has {len(base_prompt)} characters: keep it under "
                f"{MAX_PROMPT_CHARS} (the text encoder reads 77 tokens)."
            )
        if not methods:
            raise CompareInputError("No method chosen: tick at least one method to compare.")
        for m in methods:
            if m not in self.registry:
                raise CompareInputError(
                    f"Unknown method {m!r}: use one of {', '.join(self.registry.names())}."
                )
        if seed is not None and not 0 <= seed <= MAX_SEED:
            raise CompareInputError(f"seed={seed} is out of range: use 0 to {MAX_SEED}.")
        (s_lo, s_hi), (g_lo, g_hi), (i_lo, i_hi) = STEPS_RANGE, GUIDANCE_RANGE, IDENTITY_RANGE
        if not s_lo <= steps <= s_hi:
            raise CompareInputError(f"steps={steps} is out of range: use {s_lo} to {s_hi}.")
        if not g_lo <= guidance <= g_hi:
            raise CompareInputError(f"guidance={guidance} is out of range: use {g_lo} to {g_hi}.")
        if identity_strength is not None and not i_lo <= identity_strength <= i_hi:
            raise CompareInputError(
                f"identity strength={identity_strength} is out of range: use {i_lo} to {i_hi}."
            )
        if size % 8 or not SIZE_RANGE[0] <= size <= SIZE_RANGE[1]:
            raise CompareInputError(
                f"size={size} is not allowed: use a multiple of 8, {SIZE_RANGE[0]} to "
                f"{SIZE_RANGE[1]}."
            )

    # ------------------------------------------------------------------ the comparison

    def compare(
        self,
        image: Any,
        style_id: str,
        base_prompt: str,
        methods: Sequence[str],
        seed: int | None = None,
        *,
        steps: int | None = None,
        guidance: float | None = None,
        identity_strength: float | None = None,
        size: int | None = None,
        reference_images: Sequence[Image.Image] = (),
        progress: Progress | None = None,
    ) -> ComparisonResult:
        """Render ``base_prompt`` augmented by each of ``methods`` with one face and one seed."""
        s = self.settings
        steps = s.steps if steps is None else int(steps)
        guidance = s.guidance if guidance is None else float(guidance)
        size = s.size if size is None else int(size)
        methods = list(dict.fromkeys(methods))  # keep order, drop repeats
        self._check(base_prompt, methods, seed, steps, guidance, identity_strength, size)
        style = self.catalog.get(style_id)  # UnknownStyleError names the id and the choices
        seed = random.randint(0, MAX_SEED) if seed is None else int(seed)
        strength = style.identity_strength if identity_strength is None else identity_strength
        base_prompt = " ".join(base_prompt.split())
        report = progress or (lambda f, m: None)
        timings: dict[str, float] = {}
        t_start = time.perf_counter()

        # 1. Face: decode, orient, detect (cached by content hash)
        report(0.02, "Finding the face")
        t0 = time.perf_counter()
        selfie = load_image(image)
        face = self.engine.face_analyzer.analyze_loaded(selfie)
        timings["face"] = time.perf_counter() - t0

        # 2. Prompts: each method proposes ranked candidates; the best one is rendered
        t0 = time.perf_counter()
        reference_images = list(reference_images)
        if self.rated_targets is not None and set(methods) & CLIP_METHODS:
            reference_images += self.rated_targets(style.id)
        done: dict[str, MethodOutput] = {}
        computed: dict[str, Sequence[Candidate]] = {}  # what the ensemble pools, run once
        failed: dict[str, str] = {}
        for m in sorted(methods, key=lambda m: m == "ensemble"):  # the ensemble goes last
            out = self._augment(
                m, base_prompt, style, reference_images, seed, report, computed, failed
            )
            done[m] = out
            if out.candidates:
                computed[m] = out.candidates
            elif out.error:
                failed[m] = out.error
        outputs = [done[m] for m in methods]
        timings["augment"] = time.perf_counter() - t0

        # 3. One batched render: same face embedding and seed for every prompt
        todo = [o for o in outputs if o.prompt is not None]
        if todo:
            job = RenderJob(
                prompts=[o.prompt for o in todo],  # type: ignore[misc]
                negative_prompts=[o.negative_prompt or "" for o in todo],
                face=face,
                image=selfie,
                style=style,
                seed=seed,
                num_inference_steps=steps,
                guidance_scale=guidance,
                identity_strength=strength,
                size=size,
            )

            def on_step(step: int, total: int) -> None:
                report(0.3 + 0.7 * step / max(total, 1), f"Rendering step {step}/{total}")

            t0 = time.perf_counter()
            rendered = self.engine.renderer.render(job, on_step)
            timings["render"] = time.perf_counter() - t0
            for out, img in zip(todo, rendered.images, strict=True):
                out.image = img
            timings.update({f"render.{k}": v for k, v in rendered.timings.items()})
        timings["total"] = time.perf_counter() - t_start

        result = ComparisonResult(
            comparison_id=uuid.uuid4().hex,
            style_id=style.id,
            base_prompt=base_prompt,
            seed=seed,
            outputs=outputs,
            face_crop=face.crop,
            num_faces=face.num_faces,
            det_score=float(face.det_score),
            engine=self.engine.choice.name,
            engine_reason=self.engine.choice.reason,
            model_ids=dict(self.engine.renderer.model_ids),
            params={
                "steps": steps,
                "guidance": guidance,
                "identity_strength": strength,
                "size": size,
            },
            timings=timings,
        )
        self.recent.add(result)
        return result

    def _augment(
        self,
        name: str,
        base_prompt: str,
        style: Any,
        reference_images: Sequence[Image.Image],
        seed: int,
        report: Progress,
        computed: Mapping[str, Sequence[Candidate]],
        failed: Mapping[str, str],
    ) -> MethodOutput:
        method = self.registry.get(name)
        reason = method.unavailable_reason()
        if reason:
            return MethodOutput(method=name, error=reason)
        context = AugmentContext(
            catalog=self.catalog,
            budget=self.budget,
            reference_images=reference_images,
            progress=lambda f, m: report(0.05 + 0.25 * f, f"{name}: {m}"),
            seed=seed,
            computed=dict(computed),
            failed=dict(failed),
        )
        try:
            candidates = method.augment(base_prompt, style, context)
        except MethodUnavailable as exc:
            return MethodOutput(method=name, error=str(exc))
        except Exception as exc:  # one broken method must not take the whole row down
            log.exception("method %s failed", name)
            return MethodOutput(method=name, error=f"{name} failed: {exc}")
        if not candidates:
            return MethodOutput(method=name, error=f"{name} proposed no prompt")
        best = candidates[0]
        prompt = self.budget.truncate(best.prompt)  # methods respect it; this is the guarantee
        negative = style.negative_prompt if best.negative_prompt is None else best.negative_prompt
        return MethodOutput(
            method=name,
            prompt=prompt,
            negative_prompt=negative,
            score=best.score,
            trace=best.trace,
            candidates=candidates,
            tokens=self.budget.count(prompt),
        )
