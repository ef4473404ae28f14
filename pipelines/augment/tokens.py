"""The text encoder's token budget: 77 for CLIP, or the model family's own limit.

A budget counts what the encoder reads for a method's prompt: the prompt inside the family's
instruction (``"{prompt}"`` for the SD families), inside the encoder's chat template when it has
one, with special tokens, through every tokenizer the family has (SDXL has two).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.core.families import ModelFamily

CLIP_MAX_TOKENS = 77
# Without a tokenizer: tokens a chat template adds around the prompt (Qwen3's takes ~12)
CHAT_OVERHEAD_ESTIMATE = 16

# CLIP's BPE splits text into words and punctuation first; this mirrors that split.
_PIECES = re.compile(r"[A-Za-z]+|\d|[^\sA-Za-z\d]", re.UNICODE)


class TokenBudget:
    """Counts tokens with the live text encoder's tokenizer(s), or conservatively without one.

    Without a tokenizer (the preview engine has no weights) every word counts as
    ``ceil(len/5)`` tokens, at least one, which over-counts CLIP's BPE on English text,
    so a prompt that fits here also fits the real encoder.
    """

    def __init__(
        self,
        tokenizer: Any | Sequence[Any] | None = None,
        max_tokens: int = CLIP_MAX_TOKENS,
        *,
        instruction: str = "{prompt}",
        chat_template: bool = False,
    ) -> None:
        if max_tokens < 3:
            raise ValueError(f"max_tokens={max_tokens} must be at least 3")
        if "{prompt}" not in instruction:
            raise ValueError(f"instruction={instruction!r} has no {{prompt}} slot")
        if tokenizer is None:
            self.tokenizers: tuple[Any, ...] = ()
        elif isinstance(tokenizer, (list, tuple)):
            self.tokenizers = tuple(tokenizer)
        else:
            self.tokenizers = (tokenizer,)
        self.tokenizer = self.tokenizers[0] if self.tokenizers else None
        self.max_tokens = max_tokens
        self.instruction = instruction
        self.chat_template = chat_template
        self._overhead: int | None = None

    @classmethod
    def for_family(cls, family: ModelFamily, tokenizers: Sequence[Any] = ()) -> TokenBudget:
        """The budget of ``family``'s text encoder (estimated when ``tokenizers`` is empty)."""
        return cls(
            tuple(tokenizers) or None,
            family.token_limit,
            instruction=family.instruction,
            chat_template=family.chat_template,
        )

    @property
    def exact(self) -> bool:
        """Whether counts come from the real tokenizer (else a conservative estimate)."""
        return self.tokenizer is not None

    def wrap(self, text: str) -> str:
        """``text`` inside the instruction: the final prompt as rendered."""
        return self.instruction.replace("{prompt}", text)

    def count(self, text: str) -> int:
        """Tokens the encoder reads for method prompt ``text`` (wrapped, specials included)."""
        return self.count_final(self.wrap(text))

    def count_final(self, final_prompt: str) -> int:
        """Tokens the encoder reads for an already wrapped final prompt."""
        if not self.tokenizers:
            pieces = _PIECES.findall(final_prompt)
            overhead = CHAT_OVERHEAD_ESTIMATE if self.chat_template else 2
            return overhead + sum(max(1, math.ceil(len(p) / 5)) for p in pieces)
        return max(self._encoded_length(tok, final_prompt) for tok in self.tokenizers)

    def _encoded_length(self, tokenizer: Any, text: str) -> int:
        if self.chat_template:
            # exactly what diffusers' Flux2KleinPipeline feeds its Qwen3 encoder
            text = tokenizer.apply_chat_template(
                [{"role": "user", "content": text}],
                tokenize=False,
                add_generation_prompt=True,
                enable_thinking=False,
            )
        # verbose=False: over-long prompts are expected here, that is what we measure
        return len(tokenizer(text, truncation=False, verbose=False)["input_ids"])

    @property
    def overhead(self) -> int:
        """Tokens of the empty prompt: special tokens, instruction and chat template."""
        if self._overhead is None:
            self._overhead = self.count("")
        return self._overhead

    def fits(self, text: str) -> bool:
        """Whether ``text`` fits the budget."""
        return self.count(text) <= self.max_tokens

    def truncate(self, text: str) -> str:
        """``text`` cut at a word or comma boundary so that it fits the budget once wrapped."""
        if self.fits(text):
            return text
        words = text.split()
        lo, hi = 0, len(words)
        while lo < hi:  # longest prefix of words that fits
            mid = (lo + hi + 1) // 2
            if self.fits(" ".join(words[:mid])):
                lo = mid
            else:
                hi = mid - 1
        return " ".join(words[:lo]).rstrip(" ,;")
