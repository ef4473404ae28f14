"""The text encoder's token budget (77 for CLIP, start and end tokens included)."""

from __future__ import annotations

import math
import re
from typing import Any

CLIP_MAX_TOKENS = 77

# CLIP's BPE splits text into words and punctuation first; this mirrors that split.
_PIECES = re.compile(r"[A-Za-z]+|\d|[^\sA-Za-z\d]", re.UNICODE)


class TokenBudget:
    """Counts tokens with the live text encoder's tokenizer, or conservatively without one.

    Without a tokenizer (the preview engine has no weights) every word counts as
    ``ceil(len/5)`` tokens, at least one, which over-counts CLIP's BPE on English text,
    so a prompt that fits here also fits the real encoder.
    """

    def __init__(self, tokenizer: Any | None = None, max_tokens: int = CLIP_MAX_TOKENS) -> None:
        if max_tokens < 3:
            raise ValueError(f"max_tokens={max_tokens} must be at least 3")
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens

    @property
    def exact(self) -> bool:
        """Whether counts come from the real tokenizer (else a conservative estimate)."""
        return self.tokenizer is not None

    def count(self, text: str) -> int:
        """Tokens ``text`` takes, start and end tokens included."""
        if self.tokenizer is not None:
            # verbose=False: over-long prompts are expected here, that is what we measure
            return len(self.tokenizer(text, truncation=False, verbose=False)["input_ids"])
        pieces = _PIECES.findall(text)
        return 2 + sum(max(1, math.ceil(len(p) / 5)) for p in pieces)

    def fits(self, text: str) -> bool:
        """Whether ``text`` fits the budget."""
        return self.count(text) <= self.max_tokens

    def truncate(self, text: str) -> str:
        """``text`` cut at a word or comma boundary so that it fits the budget."""
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
