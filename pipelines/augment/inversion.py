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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from pipelines.augment.base import AugmentContext, Candidate, MethodUnavailable, TraceStep
from pipelines.augment.clip_backend import LazyClip
from pipelines.errors import InputError

if TYPE_CHECKING:
    from PIL import Image

    from pipelines.augment.clip_backend import ClipBackend
    from pipelines.augment.tokens import TokenBudget
    from pipelines.modifiers import Modifier
    from pipelines.styles import Style

log = logging.getLogger(__name__)

MODES = ("fast", "pez")
CACHE_VERSION = 1  # bump when the cached record or the algorithms change
END_OF_WORD = "</w>"
# Words this short are kept only if they are real words; other 1-2 letter pieces are BPE noise.
SHORT_WORDS = frozenset(
    {"a", "an", "as", "at", "by", "in", "is", "it", "of", "on", "or", "to", "up", "no",
     "hd", "tv", "uv"}
)  # fmt: skip
Progress = Callable[[float, str], None]


class InversionInputError(InputError):
    """A bad argument to the inversion functions or method; names the value and what is allowed."""


# ----------------------------------------------------------------------------- vocabulary


def readable_token_mask(tokenizer: Any, vocab_size: int) -> torch.Tensor:
    """(vocab_size,) bool: tokens PEZ may pick. Whole lower-case ASCII words only.

    Excludes start/end/pad tokens, byte fragments, punctuation, non-ASCII pieces and
    word-start pieces (no ``</w>``), which would glue onto the next token when decoded.
    Rows beyond the tokenizer's vocabulary (a padded embedding matrix) are excluded too.
    """
    mask = torch.zeros(vocab_size, dtype=torch.bool)
    n = min(vocab_size, len(tokenizer))
    specials = set(tokenizer.all_special_ids)
    for i, tok in enumerate(tokenizer.convert_ids_to_tokens(list(range(n)))):
        if i in specials or tok is None or not tok.endswith(END_OF_WORD):
            continue
        word = tok[: -len(END_OF_WORD)]
        if word.isascii() and word.isalpha() and (len(word) >= 3 or word in SHORT_WORDS):
            mask[i] = True
    return mask


def _readable_word(word: str) -> bool:
    if not (word.isascii() and word.isalnum()) or not any(c.isalpha() for c in word):
        return False  # punctuation, non-ASCII, bare numbers
    return len(word) >= 3 or word.lower() in SHORT_WORDS


def decode_clean(tokenizer: Any, ids: Sequence[int]) -> str:
    """Readable text for token ``ids``: no special tokens, no ``</w>``, no unreadable pieces.

    Tokens are joined into words at ``</w>`` boundaries; words that are non-ASCII, lone
    punctuation, bare numbers or 1-2 letter BPE fragments are dropped, and immediate
    repeats collapsed.
    """
    specials = set(tokenizer.all_special_ids)
    words: list[str] = []
    piece: list[int] = []

    def flush() -> None:
        if piece:  # decode() undoes the byte-level alphabet and strips </w>
            words.append(tokenizer.decode(piece).strip())
            piece.clear()

    ids = [int(i) for i in ids]
    for i, tok in zip(ids, tokenizer.convert_ids_to_tokens(ids), strict=True):
        if tok is None or i in specials:
            flush()  # a special token ends the current word
            continue
        piece.append(i)
        if tok.endswith(END_OF_WORD):
            flush()
    flush()
    kept: list[str] = []
    for w in (w for text in words for w in text.split()):
        if _readable_word(w) and (not kept or kept[-1].lower() != w.lower()):
            kept.append(w)
    return " ".join(kept)


# ----------------------------------------------------------------------------- PEZ


@dataclass(frozen=True)
class PezResult:
    text: str  # decode_clean of token_ids
    token_ids: tuple[int, ...]  # best projected prompt, without start/end tokens
    similarity: float  # mean cosine of the best projected prompt to all targets
    initial_similarity: float  # the same for the random initial prompt
    steps: int
    history: tuple[float, ...]  # best-of-batch similarity of the projected prompt, per step


def _check_targets(clip: ClipBackend, target_features: torch.Tensor) -> torch.Tensor:
    if not isinstance(target_features, torch.Tensor) or target_features.dim() != 2:
        shape = getattr(target_features, "shape", type(target_features).__name__)
        raise InversionInputError(
            f"target_features must be a (n, {clip.embed_dim}) tensor, got {shape}"
        )
    if target_features.shape[0] == 0 or target_features.shape[1] != clip.embed_dim:
        raise InversionInputError(
            f"target_features must be (n >= 1, {clip.embed_dim}), "
            f"got {tuple(target_features.shape)}"
        )
    t = target_features.to(clip.device, torch.float32)
    return t / t.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # (n, d)


def _check_int(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InversionInputError(f"{name}={value!r} is not allowed: use an integer {low}..{high}")


def _check_positive(name: str, value: float, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InversionInputError(f"{name}={value!r} is not allowed: use a finite number {bound}")


def pez_invert(
    clip: ClipBackend,
    target_features: torch.Tensor,
    *,
    prompt_len: int = 16,
    steps: int = 300,
    lr: float = 0.1,
    weight_decay: float = 0.1,
    seed: int = 0,
    batch_size: int = 1,
    num_prompts: int = 1,
    progress: Progress | None = None,
    print_every: int = 50,
) -> PezResult:
    """Find ``prompt_len`` vocabulary tokens whose CLIP text features match the targets.

    Follows the paper's reference loop (``optimize_prompt_loop``): ``num_prompts`` prompts
    are optimised in parallel, each step samples ``batch_size`` of the targets for the loss
    (the paper's default: one), and the best projected prompt over all targets is kept.
    Deterministic for a ``seed`` on a given device.
    """
    targets = _check_targets(clip, target_features)  # (n, d)
    _check_int("prompt_len", prompt_len, 1, clip.max_length - 2)
    _check_int("steps", steps, 1, 100_000)
    _check_int("batch_size", batch_size, 1, 100_000)
    _check_int("num_prompts", num_prompts, 1, 256)
    _check_int("print_every", print_every, 1, 100_000)
    _check_positive("lr", lr)
    _check_positive("weight_decay", weight_decay, allow_zero=True)

    device, tok = clip.device, clip.tokenizer
    vocab = clip.token_embedding.detach().float()  # (V, h)
    allowed_ids = readable_token_mask(tok, vocab.shape[0]).nonzero().squeeze(1)  # (A,)
    if len(allowed_ids) == 0:
        raise InversionInputError(f"the tokenizer of {clip.model_id} has no readable word tokens")
    allowed_ids = allowed_ids.to(device)
    allowed_unit = F.normalize(vocab[allowed_ids], dim=-1)  # (A, h)

    gen = torch.Generator().manual_seed(seed)  # CPU generator: same draws on every device
    start = torch.randint(len(allowed_ids), (num_prompts, prompt_len), generator=gen)
    prompt_embeds = vocab[allowed_ids[start.to(device)]].clone().requires_grad_(True)  # (p, L, h)
    optimizer = torch.optim.AdamW([prompt_embeds], lr=lr, weight_decay=weight_decay)

    p, h = num_prompts, vocab.shape[1]
    bos = vocab[tok.bos_token_id].expand(p, 1, h)
    eos = vocab[tok.eos_token_id].expand(p, 1, h)
    eos_index = torch.full((p,), prompt_len + 1, device=device)  # <bos> prompt <eos>

    n = targets.shape[0]
    best_sim, best_ids = -math.inf, torch.empty(0, dtype=torch.long)
    history: list[float] = []
    for step in range(steps):
        with torch.no_grad():  # nearest readable token by cosine, as nn_project in the paper
            sims = F.normalize(prompt_embeds, dim=-1) @ allowed_unit.T  # (p, L, A)
            ids = allowed_ids[sims.argmax(dim=-1)]  # (p, L)
        projected = vocab[ids].requires_grad_(True)  # (p, L, h) leaf: gradient is taken here
        feats = clip.text_features_from_embeds(torch.cat([bos, projected, eos], 1), eos_index)
        if batch_size < n:
            sample = torch.randperm(n, generator=gen)[:batch_size].to(device)
            batch = targets[sample]  # (b, d)
        else:
            batch = targets
        loss = 1 - (batch @ feats.T).mean()  # (b, p) cosines
        (grad,) = torch.autograd.grad(loss, [projected])
        prompt_embeds.grad = grad  # straight-through: the projected prompt's gradient
        optimizer.step()
        optimizer.zero_grad()

        with torch.no_grad():  # text features do not depend on the targets: reuse them
            universal = (targets @ feats.detach().T).mean(dim=0)  # (p,)
        sim, k = universal.max().item(), int(universal.argmax())
        history.append(sim)
        if sim > best_sim:
            best_sim, best_ids = sim, ids[k].detach().cpu()
        if (step + 1) % print_every == 0 or step + 1 == steps:
            msg = f"PEZ step {step + 1}/{steps}: CLIP similarity {sim:.3f} (best {best_sim:.3f})"
            log.debug(msg)
            if progress is not None:
                progress((step + 1) / steps, msg)
    token_ids = tuple(int(i) for i in best_ids)
    return PezResult(
        text=decode_clean(tok, token_ids),
        token_ids=token_ids,
        similarity=best_sim,
        initial_similarity=history[0],
        steps=steps,
        history=tuple(history),
    )


# ----------------------------------------------------------------------------- fast mode


@dataclass(frozen=True)
class ModifierChoice:
    text: str
    source: str  # "global" or the style id, as Modifier.source
    similarity: float  # the whole prompt's similarity once this modifier is in
    gain: float  # how much adding it raised that similarity


@dataclass(frozen=True)
class InterrogateResult:
    text: str  # chosen modifiers joined by ", "
    prompt: str  # base prompt + ", " + text
    chosen: tuple[ModifierChoice, ...]
    similarity: float  # of ``prompt``
    base_similarity: float | None  # of the base prompt alone; None when it is empty
    evaluated: int  # prompts encoded by CLIP


def join_prompt(base: str, addition: str) -> str:
    base, addition = base.strip().rstrip(","), addition.strip()
    return f"{base}, {addition}" if base and addition else base or addition


def _mean_similarity(clip: ClipBackend, targets: torch.Tensor, texts: Sequence[str]) -> np.ndarray:
    feats = clip.text_features(texts)  # (m, d)
    return (targets @ feats.T).mean(dim=0).cpu().numpy()  # (m,)


def _occurs(text: str, prompt: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(text)}(?!\w)", prompt, re.IGNORECASE) is not None


def interrogate(
    clip: ClipBackend,
    target_features: torch.Tensor,
    modifiers: Sequence[Modifier],
    budget: TokenBudget,
    max_modifiers: int = 8,
    *,
    base_prompt: str = "",
    pool: int = 48,
    progress: Progress | None = None,
) -> InterrogateResult:
    """Greedy CLIP-Interrogator-style prompt from a modifier bank.

    The ``pool`` modifiers most similar to the targets on their own are the candidates; each
    round appends the one that raises the full prompt's mean similarity most, skipping any
    that conflicts with one already chosen or present in the base prompt, or that would not
    fit ``budget``. Stops when no candidate raises the similarity.
    """
    from pipelines.modifiers import conflicts

    targets = _check_targets(clip, target_features)
    _check_int("max_modifiers", max_modifiers, 0, 64)
    _check_int("pool", pool, 1, 10_000)
    bank = [m for m in dict.fromkeys(modifiers) if not _occurs(m.text, base_prompt)]
    present = [m for m in modifiers if _occurs(m.text, base_prompt)]
    if not budget.fits(base_prompt):
        base_prompt = budget.truncate(base_prompt)

    evaluated = 0
    if bank:
        alone = _mean_similarity(clip, targets, [m.text for m in bank])
        evaluated += len(bank)
        order = np.argsort(-alone, kind="stable")[:pool]
        bank = [bank[i] for i in order]
    base_sim = None
    if base_prompt.strip():
        base_sim = float(_mean_similarity(clip, targets, [base_prompt])[0])
        evaluated += 1
    current, current_sim = base_prompt, -math.inf if base_sim is None else base_sim
    chosen: list[tuple[Modifier, float, float]] = []
    for round_ in range(max_modifiers):
        taken = [m for m, _, _ in chosen] + present
        options = [
            (m, join_prompt(current, m.text))
            for m in bank
            if m not in taken and not any(conflicts(m, t) for t in taken)
        ]
        options = [(m, text) for m, text in options if budget.fits(text)]
        if not options:
            break
        sims = _mean_similarity(clip, targets, [text for _, text in options])
        evaluated += len(options)
        k = int(np.argmax(sims))
        if sims[k] <= current_sim:
            break  # nothing raises the similarity: more words would only dilute
        gain = float(sims[k] - current_sim) if math.isfinite(current_sim) else float(sims[k])
        current, current_sim = options[k][1], float(sims[k])
        chosen.append((options[k][0], current_sim, gain))
        if progress is not None:
            progress((round_ + 1) / max_modifiers, f"added {options[k][0].text!r}")
    if progress is not None:
        progress(1.0, f"{len(chosen)} modifier(s) chosen, CLIP similarity {current_sim:.3f}")
    if not math.isfinite(current_sim):  # empty base and nothing fitted
        current_sim = float(_mean_similarity(clip, targets, [current])[0]) if current else 0.0
    return InterrogateResult(
        text=", ".join(m.text for m, _, _ in chosen),
        prompt=current,
        chosen=tuple(ModifierChoice(m.text, m.source, s, g) for m, s, g in chosen),
        similarity=current_sim,
        base_similarity=base_sim,
        evaluated=evaluated,
    )


# ----------------------------------------------------------------------------- the method


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


def image_digest(image: Image.Image) -> str:
    """sha256 of an image's RGB pixels and size: the cache key part, never the image itself."""
    from pipelines.face import image_hash

    return image_hash(image.convert("RGB"))


@dataclass(frozen=True)
class PezConfig:
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
    description = (
        "Text recovered from the style's reference images with CLIP: the bank modifiers that "
        "match them best (fast) or an optimised hard prompt (PEZ)."
    )

    def __init__(
        self,
        clip_loader: Callable[[], ClipBackend],
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
        self.clip_loader = clip_loader
        self.cache_dir = Path(cache_dir)
        self.mode = mode
        self.pez = pez or PezConfig(steps=pez_steps)  # a full config wins over pez_steps
        self.max_modifiers = max_modifiers
        self.pool = pool
        self.max_cache_entries = max_cache_entries  # records are ~2 kB: 1000 is ~2 MB on disk
        self._clip = LazyClip(clip_loader)
        self._run_lock = threading.Lock()  # one optimisation at a time: they saturate the CPU

    # -- availability

    def clip(self) -> ClipBackend:
        """The loaded CLIP; raises ClipUnavailable (a MethodUnavailable) with the reason."""
        return self._clip.get()

    def unavailable_reason(self) -> str | None:
        return self._clip.reason()

    def targets(self, style: Style, context: AugmentContext) -> list[Image.Image]:
        return load_targets(style, context)

    def cache_key(
        self,
        model_id: str,
        images: Sequence[Image.Image],
        base_prompt: str,
        style: Style,
        context: AugmentContext,
    ) -> str:
        """sha256 over everything the recovered text depends on."""
        parts: dict[str, Any] = {
            "v": CACHE_VERSION,
            "model": model_id,
            "images": [image_digest(im) for im in images],
            "mode": self.mode,
        }
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
        images = self.targets(style, context)
        if not images:
            raise MethodUnavailable(
                f"add a reference image for {style.name}: upload one as the style reference, "
                f"or put images in {style.reference_dir}"
            )
        clip = self.clip()
        report = context.progress or (lambda f, m: None)
        key = self.cache_key(clip.model_id, images, base_prompt, style, context)
        features = None
        record = self._read_cache(key)
        cached = record is not None
        if record is None:
            with self._run_lock:
                record = self._read_cache(key)  # another thread may have just computed it
                cached = record is not None
                if record is None:
                    t0 = time.perf_counter()
                    features = clip.image_features(images)  # (n, d)
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
                features = clip.image_features(images)
            score = float(_mean_similarity(clip, features, [prompt])[0])
            trace = self._pez_trace(record, prompt, len(images))
        else:
            prompt, score = record["prompt"], record["similarity"]
            trace = self._fast_trace(record, len(images))
        if base_prompt.strip():
            trace = (TraceStep(base_prompt.strip(), "user", "the base prompt as typed"), *trace)
        meta = {k: v for k, v in record.items() if k not in ("contributions", "words", "chosen")}
        meta |= {
            "references": len(images),
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
    def _pez_trace(record: dict[str, Any], prompt: str, n_refs: int) -> tuple[TraceStep, ...]:
        steps = [
            TraceStep(
                record["recovered"],
                "pez",
                f"CLIP similarity {record['similarity']:.3f} to {n_refs} reference image(s) after "
                f"{record['steps']} PEZ steps (random start {record['initial_similarity']:.3f})",
            )
        ]
        for word, c in zip(record["words"], record["contributions"], strict=False):
            if _occurs(word, prompt):
                steps.append(TraceStep(word, "pez", f"dropping it changes similarity by {-c:+.3f}"))
        return tuple(steps)

    @staticmethod
    def _fast_trace(record: dict[str, Any], n_refs: int) -> tuple[TraceStep, ...]:
        return tuple(
            TraceStep(
                c["text"],
                "global bank" if c["source"] == "global" else "style bank",
                f"raises CLIP similarity to {n_refs} reference image(s) by {c['gain']:+.3f} "
                f"(to {c['similarity']:.3f})",
            )
            for c in record["chosen"]
        )
