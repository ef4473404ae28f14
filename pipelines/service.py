"""One comparison: face -> each method's prompt -> one batched render -> a frozen result.

The service is shared by all requests; everything it holds is read-only or guards itself
(the face cache, the pipeline lock, the scorer holder, the recent results).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from pipelines.augment.base import AugmentContext, Candidate, MethodRegistry, MethodUnavailable
from pipelines.augment.tokens import TokenBudget
from pipelines.face import ImageSource, load_image
from pipelines.feedback.records import image_sha256
from pipelines.recent import RecentComparisons
from pipelines.renderers.base import RenderJob
from pipelines.request import CompareInputError, CompareRequest, Progress, no_progress, sub_progress
from pipelines.results import ComparisonResult, MethodOutput

if TYPE_CHECKING:
    from PIL import Image

    from pipelines.engines import Engine
    from pipelines.face import FaceResult
    from pipelines.measures import OutputMeasurer
    from pipelines.styles import Style, StyleCatalog

log = logging.getLogger(__name__)

# top-rated consented outputs of a style: extra targets for methods that use references
RatedTargets = Callable[[str], list["Image.Image"]]


class ComparisonService:
    """Runs comparisons for the UI, the API, the CLI and the benchmarks."""

    def __init__(
        self,
        engine: Engine,
        catalog: StyleCatalog,
        registry: MethodRegistry,
        rated_targets: RatedTargets | None = None,
        recent: RecentComparisons | None = None,
        measurer: OutputMeasurer | None = None,
    ) -> None:
        self.engine = engine
        self.measurer = measurer  # None = outputs carry no automatic measures
        self.catalog = catalog
        self.registry = registry
        self.rated_targets = rated_targets
        self.recent = recent if recent is not None else RecentComparisons()
        self._budget: TokenBudget | None = None
        self._budget_lock = threading.Lock()

    @property
    def budget(self) -> TokenBudget:
        """The live text encoder's 77-token budget (estimated when no tokenizer is available)."""
        if self._budget is None:
            with self._budget_lock:
                if self._budget is None:
                    self._budget = TokenBudget(self.engine.tokenizer.get())
        return self._budget

    def compare(
        self, selfie: ImageSource, request: CompareRequest, progress: Progress = no_progress
    ) -> ComparisonResult:
        """Render the base prompt augmented by each of the request's methods, one face, one seed."""
        timings: dict[str, float] = {}
        t_start = time.perf_counter()

        # 0. What the request cannot check alone: the style and methods exist here
        style = self.catalog.get(request.style)  # UnknownStyleError names the id and the choices
        for name in request.methods:
            if name not in self.registry:
                raise CompareInputError(
                    f"Unknown method {name!r}: use one of {', '.join(self.registry.names())}."
                )
        request = request.with_identity(style.identity_strength)

        # 1. Face: decode, orient, detect (cached by content hash)
        progress(0.02, "Finding the face")
        t0 = time.perf_counter()
        image = load_image(selfie)
        face = self.engine.face.get().analyze_loaded(image)
        timings["face"] = time.perf_counter() - t0

        # 2. Prompts: each method proposes ranked candidates; the best one is rendered
        t0 = time.perf_counter()
        outputs = self._augment_all(request, style, sub_progress(progress, 0.05, 0.3))
        timings["augment"] = time.perf_counter() - t0

        # 3. One batched render: same face embedding and seed for every prompt
        todo = [o for o in outputs if o.prompt is not None]
        if todo:
            job = RenderJob(
                request=request,
                prompt=tuple(o.prompt or "" for o in todo),
                negative_prompt=tuple(o.negative_prompt or "" for o in todo),
                face=face,
                image=image,
                style=style,
            )
            t0 = time.perf_counter()
            rendered = self.engine.renderer.render(job, sub_progress(progress, 0.3, 1.0))
            timings["render"] = time.perf_counter() - t0
            timings.update({f"render.{k}": v for k, v in rendered.timings.items()})
            # 4. Outputs complete when built: image and its hash together
            images = dict(zip((o.method for o in todo), rendered.images, strict=True))
            outputs = [
                replace(o, image=images[o.method], image_hash=image_sha256(images[o.method]))
                if o.method in images
                else o
                for o in outputs
            ]
            # 5. Automatic measures, once, here: page, API, ratings and decks read the same
            t0 = time.perf_counter()
            outputs = self._measured(outputs, image, face, request, style)
            timings["measure"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - t_start

        result = ComparisonResult(
            comparison_id=uuid.uuid4().hex,
            request=request,
            outputs=tuple(outputs),
            face_crop=face.crop,
            num_faces=face.num_faces,
            det_score=float(face.det_score),
            engine=self.engine.choice.name,
            engine_reason=self.engine.choice.reason,
            model_ids=dict(self.engine.renderer.model_ids),
            timings=timings,
        )
        self.recent.add(result)
        return result

    def _measured(
        self,
        outputs: list[MethodOutput],
        image: Image.Image,
        face: FaceResult,
        request: CompareRequest,
        style: Style,
    ) -> list[MethodOutput]:
        """``outputs`` with their :class:`~pipelines.measures.Measures` (pipelines/measures.py)."""
        if self.measurer is None:
            return outputs
        measures = self.measurer.measure(outputs, image, face, request.prompt, style)
        return [
            o if m is None else replace(o, measures=m)
            for o, m in zip(outputs, measures, strict=True)
        ]

    def _augment_all(
        self, request: CompareRequest, style: Style, progress: Progress
    ) -> list[MethodOutput]:
        """Each method's best prompt, in the request's order.

        Methods that pool others' candidates run last and get what already ran, so nothing
        runs twice; methods that use references get the request's and the top-rated images.
        """
        methods = [self.registry.get(name) for name in request.methods]
        references = list(request.reference_images)
        if self.rated_targets is not None and any(m.uses_references for m in methods):
            references += self.rated_targets(style.id)
        done: dict[str, MethodOutput] = {}
        computed: dict[str, Sequence[Candidate]] = {}
        failed: dict[str, str] = {}
        for i, method in enumerate(sorted(methods, key=lambda m: bool(m.pools))):
            context = AugmentContext(
                catalog=self.catalog,
                budget=self.budget,
                reference_images=references,
                progress=sub_progress(
                    progress, i / len(methods), (i + 1) / len(methods), f"{method.name}: "
                ),
                seed=request.seed,
                computed=dict(computed),
                failed=dict(failed),
            )
            out = self._augment(method.name, request.prompt, style, context)
            done[method.name] = out
            if out.candidates:
                computed[method.name] = out.candidates
            elif out.error:
                failed[method.name] = out.error
        return [done[name] for name in request.methods]

    def _augment(
        self, name: str, base_prompt: str, style: Style, context: AugmentContext
    ) -> MethodOutput:
        method = self.registry.get(name)
        reason = method.unavailable_reason()
        if reason:
            return MethodOutput(method=name, error=reason)
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
            tokens=self.budget.count(prompt),
            trace=best.trace,
            candidates=tuple(candidates),
        )
