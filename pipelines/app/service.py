"""One comparison: face -> each method's prompt -> one batched render -> a frozen result.

Several people's rows can be rendered together (:meth:`ComparisonService.compare_many`): each
output keeps its own face embedding and seeded generator, so its pixels are the same as when its
row is rendered alone. The service is shared by all requests; everything it holds is read-only or
guards itself (the face cache, the pipeline lock, the scorer holder, the recent results).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pipelines.augment.base import AugmentContext, MethodRegistry, MethodUnavailable
from pipelines.augment.learned.model import model_version
from pipelines.augment.tokens import TokenBudget
from pipelines.core.errors import UserError
from pipelines.core.recent import RecentComparisons
from pipelines.core.request import (
    CompareInputError,
    CompareRequest,
    Progress,
    no_progress,
    sub_progress,
)
from pipelines.core.results import LEARNED_MODEL, ComparisonResult, MethodOutput
from pipelines.core.trace import Candidate, TraceStep
from pipelines.faces.photo import ImageSource, load_image
from pipelines.feedback.records import image_sha256
from pipelines.models.jobs import RenderJob
from pipelines.models.safety import FLAGGED_MESSAGE

if TYPE_CHECKING:
    from PIL import Image

    from pipelines.app.engines import Engine
    from pipelines.augment.learned.model import LearnedScorer, ScorerHolder
    from pipelines.faces.analysis import FaceResult
    from pipelines.measurer import OutputMeasurer
    from pipelines.styles.catalog import Style, StyleCatalog

log = logging.getLogger(__name__)

# top-rated consented outputs of a style: extra targets for methods that use references
RatedTargets = Callable[[str], list["Image.Image"]]


@dataclass(frozen=True)
class _Row:
    """A row ready to render: request resolved, face found, every method's prompt chosen."""

    request: CompareRequest
    style: Style
    image: Image.Image
    face: FaceResult
    outputs: tuple[MethodOutput, ...]
    timings: dict[str, float]
    learned_model: str = ""  # the learned scorer's version id that ranked and scored the prompts

    @property
    def to_render(self) -> list[MethodOutput]:
        """The outputs whose prompts are rendered: each distinct prompt once, in row order."""
        return [o for o in self.outputs if o.prompt is not None and o.same_as is None]

    def job(self) -> RenderJob | None:
        """The prompts to render, in :attr:`to_render` order."""
        todo = self.to_render
        if not todo:
            return None
        return RenderJob(
            request=self.request,
            prompt=tuple(o.prompt or "" for o in todo),
            negative_prompt=tuple(o.negative_prompt or "" for o in todo),
            face=self.face,
            image=self.image,
            style=self.style,
        )


class ComparisonService:
    """Runs comparisons for the UI, the API, the CLI and the benchmarks."""

    def __init__(
        self,
        engine: Engine,
        catalog: StyleCatalog,
        registry: MethodRegistry,
        rated_targets: RatedTargets | None = None,
        recent: RecentComparisons | None = None,
        scorer: ScorerHolder | None = None,
        measurer: OutputMeasurer | None = None,
    ) -> None:
        self.engine = engine
        self.catalog = catalog
        self.registry = registry
        self.rated_targets = rated_targets
        self.recent = recent if recent is not None else RecentComparisons()
        self.scorer = scorer  # the learned scorer: one score scale for every method's prompt
        self.measurer = measurer  # identity, style, prompt measures on every output

    @property
    def budget(self) -> TokenBudget:
        """The model family's token budget (estimated when no tokenizer is available)."""
        return self.engine.budget.get()

    def compare(
        self, selfie: ImageSource, request: CompareRequest, progress: Progress = no_progress
    ) -> ComparisonResult:
        """Render the base prompt augmented by each of the request's methods, one face, one seed."""
        outcome = self.compare_many([(selfie, request)], progress)[0]
        if isinstance(outcome, UserError):
            raise outcome
        return outcome

    def compare_many(
        self, rows: Sequence[tuple[ImageSource, CompareRequest]], progress: Progress = no_progress
    ) -> list[ComparisonResult | UserError]:
        """Several rows (e.g. several people's) rendered in one batched call.

        Each row's outcome is its result, or the :class:`UserError` that stopped it (a photo
        without a face, an unknown style): one person's bad input never fails the others.
        """
        t_start = time.perf_counter()
        # 1-2. Per row: validate, find the face, choose each method's prompt
        ready: list[_Row | UserError] = []
        for i, (selfie, request) in enumerate(rows):
            part = sub_progress(progress, 0.3 * i / len(rows), 0.3 * (i + 1) / len(rows))
            try:
                ready.append(self._prepare(selfie, request, part))
            except UserError as exc:
                ready.append(exc)

        # 3. One batched render of every prepared row's distinct prompts
        prepared = [r for r in ready if isinstance(r, _Row)]
        jobs = [(r, job) for r in prepared if (job := r.job()) is not None]
        images: dict[int, dict[str, tuple[Image.Image, bool]]] = {}
        render_timings: dict[str, float] = {}
        if jobs:
            t0 = time.perf_counter()
            rendered = self.engine.renderer.render_many(
                [job for _, job in jobs], sub_progress(progress, 0.3, 1.0)
            )
            render_timings["render"] = time.perf_counter() - t0
            render_timings["render.rows"] = float(len(jobs))
            for (row, _), out in zip(jobs, rendered, strict=True):
                todo = [o.method for o in row.to_render]
                flagged = out.flagged or (False,) * len(todo)
                pairs = zip(out.images, flagged, strict=True)
                images[id(row)] = dict(zip(todo, pairs, strict=True))
                render_timings.update({f"render.{k}": v for k, v in out.timings.items()})

        # 4. Results complete when built: images and their hashes together
        return [
            r
            if isinstance(r, UserError)
            else self._result(r, images.get(id(r), {}), t_start, render_timings)
            for r in ready
        ]

    def _prepare(self, selfie: ImageSource, request: CompareRequest, progress: Progress) -> _Row:
        timings: dict[str, float] = {}
        # 0. What the request cannot check alone: the style and methods exist here
        style = self.catalog.get(request.style)  # UnknownStyleError names the id and the choices
        for name in request.methods:
            if name not in self.registry:
                raise CompareInputError(
                    f"Unknown method {name!r}: use one of {', '.join(self.registry.names())}."
                )
        family = self.engine.family
        if request.model_family != family.id:
            raise CompareInputError(
                f"model_family={request.model_family!r}: this app renders with {family.id}; "
                "build the request from the app's settings"
            )
        # unset identity strength: the style's (the request leaves it None where nothing reads it)
        request = request.with_identity(style.identity_strength)

        # 1. Face: decode, orient, detect (cached by content hash)
        progress(0.05, "Finding the face")
        t0 = time.perf_counter()
        image = load_image(selfie)
        face = self.engine.face.get().analyze_loaded(image)
        timings["face"] = time.perf_counter() - t0

        # 2. Prompts: each method proposes ranked candidates; the best one is rendered
        t0 = time.perf_counter()
        # the model read once for the row: a retrained one swapped in meanwhile is the next
        # row's (the learned method reads the holder as it starts, a moment earlier)
        scorer = self.scorer.get() if self.scorer is not None and self.scorer.loaded else None
        outputs = self._augment_all(request, style, sub_progress(progress, 0.2, 1.0), scorer)
        timings["augment"] = time.perf_counter() - t0
        version = "" if scorer is None else model_version(scorer)
        return _Row(request, style, image, face, tuple(outputs), timings, version)

    def _result(
        self,
        row: _Row,
        images: dict[str, tuple[Image.Image, bool]],
        t_start: float,
        render_timings: dict[str, float],
    ) -> ComparisonResult:
        # a flagged output gets the placeholder, no hash (it cannot be rated or stored) and why
        hashes = {m: image_sha256(img) for m, (img, hit) in images.items() if not hit}
        outputs = []
        for o in row.outputs:
            source = o.same_as or o.method
            if source in images:
                image, hit = images[source]
                if hit:
                    o = replace(o, image=image, error=FLAGGED_MESSAGE, flagged=True)
                else:
                    o = replace(o, image=image, image_hash=hashes[source])
            outputs.append(o)
        timings = {**row.timings, **render_timings}
        # 5. Automatic measures, once, here: page, API, ratings and decks read the same
        t0 = time.perf_counter()
        outputs = self._measured(outputs, row.image, row.face, row.request, row.style)
        timings["measure"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - t_start
        result = ComparisonResult(
            comparison_id=uuid.uuid4().hex,
            request=row.request,
            outputs=tuple(outputs),
            face_crop=row.face.crop,
            num_faces=row.face.num_faces,
            det_score=float(row.face.det_score),
            engine=self.engine.choice.name,
            engine_reason=self.engine.choice.reason,
            # the learned model's version with the weights: ratings, decks and exports keep it
            model_ids={
                **self.engine.renderer.model_ids,
                **({LEARNED_MODEL: row.learned_model} if row.learned_model else {}),
            },
            timings=timings,
            face_stand_in=row.face.stand_in,
            model_family=self.engine.family.id,
            licence=self.engine.family.licence,
            safety_checker=self.engine.safety.on,
            token_limit=self.budget.max_tokens,
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
        """``outputs`` with their :class:`~pipelines.measurer.Measures` (pipelines/measurer.py)."""
        if self.measurer is None:
            return outputs
        measures = self.measurer.measure(outputs, image, face, request.prompt, style)
        return [
            o if m is None else replace(o, measures=m)
            for o, m in zip(outputs, measures, strict=True)
        ]

    def _augment_all(
        self,
        request: CompareRequest,
        style: Style,
        progress: Progress,
        scorer: LearnedScorer | None = None,
    ) -> list[MethodOutput]:
        """Each method's best prompt, in the request's order, scored on one scale.

        Methods that pool others' candidates run last and get what already ran, so nothing
        runs twice; methods that use references get the request's and the top-rated images.
        A prompt equal to an earlier method's is not rendered twice: it says which it repeats.
        """
        methods = [self.registry.get(name) for name in request.methods]
        references = list(request.reference_images)
        if self.rated_targets is not None and any(m.uses_references for m in methods):
            references += self.rated_targets(style.id)
        done: dict[str, MethodOutput] = {}
        computed: dict[str, Sequence[Candidate]] = {}
        failed: dict[str, str] = {}
        n = len(methods)
        for i, method in enumerate(sorted(methods, key=lambda m: bool(m.pools))):
            context = AugmentContext(
                catalog=self.catalog,
                budget=self.budget,
                reference_images=references,
                progress=sub_progress(progress, i / n, (i + 1) / n, f"{method.name}: "),
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
        ordered = [done[name] for name in request.methods]
        return _mark_repeats(_scored(ordered, style, scorer))

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
        trace = best.trace
        if best.score is not None:  # on the method's own scale: kept in the trace only
            trace += (TraceStep(f"{best.score:.3f}", name, f"{name}'s own ranking score"),)
        return MethodOutput(
            method=name,
            # exactly what is rendered: inside the family's instruction (SD: the prompt itself)
            prompt=self.budget.wrap(prompt),
            negative_prompt=negative if self.engine.family.negative_prompt else None,
            tokens=self.budget.count(prompt),
            trace=trace,
            candidates=tuple(candidates),
        )


def _scored(
    outputs: list[MethodOutput], style: Style, scorer: LearnedScorer | None
) -> list[MethodOutput]:
    """Every prompt scored by the learned scorer, so scores compare across methods: both
    stages where the contextual encoder loads (as the learned method ranks), else the fast."""
    todo = [o for o in outputs if o.prompt is not None]
    if not todo or scorer is None:
        return outputs
    scores, _ = scorer.rerank([o.prompt or "" for o in todo], style.id)
    by_method = {o.method: float(s) for o, s in zip(todo, scores, strict=True)}
    return [
        replace(o, score=round(by_method[o.method], 4)) if o.method in by_method else o
        for o in outputs
    ]


def _mark_repeats(outputs: list[MethodOutput]) -> list[MethodOutput]:
    """Outputs whose prompts repeat an earlier method's are marked, to be rendered once."""
    first: dict[tuple[str, str], str] = {}
    marked = []
    for o in outputs:
        if o.prompt is None:
            marked.append(o)
            continue
        key = (o.prompt, o.negative_prompt or "")
        if key in first:
            marked.append(replace(o, same_as=first[key]))
        else:
            first[key] = o.method
            marked.append(o)
    return marked
