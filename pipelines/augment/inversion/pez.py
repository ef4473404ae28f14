"""PEZ hard-prompt optimisation ("Hard Prompts Made Easy", Wen et al., 2023).

Optimise continuous token embeddings, projecting them to their nearest readable vocabulary
tokens at every step and applying the gradient taken at the projection to the continuous ones
(straight-through). Also the readable-vocabulary mask and the decoding of the result to text.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from pipelines.augment.inversion.args import (
    InversionInputError,
    Progress,
    _check_int,
    _check_positive,
    _check_targets,
)

if TYPE_CHECKING:
    from pipelines.augment.clip_backend import ClipBackend

log = logging.getLogger(__name__)

END_OF_WORD = "</w>"
# Words this short are kept only if they are real words; other 1-2 letter pieces are BPE noise.
SHORT_WORDS = frozenset(
    {"a", "an", "as", "at", "by", "in", "is", "it", "of", "on", "or", "to", "up", "no",
     "hd", "tv", "uv"}
)  # fmt: skip


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
    """What :func:`pez_invert` found: the best projected prompt and its similarity history."""

    text: str  # decode_clean of token_ids
    token_ids: tuple[int, ...]  # best projected prompt, without start/end tokens
    similarity: float  # mean cosine of the best projected prompt to all targets
    initial_similarity: float  # the same for the random initial prompt
    steps: int
    history: tuple[float, ...]  # best-of-batch similarity of the projected prompt, per step


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
