import pytest

from pipelines.augment.tokens import TokenBudget


class CountingTokenizer:
    """One token per whitespace word plus start/end, like a toy CLIP tokenizer."""

    def __call__(self, text, truncation=False, verbose=True):
        return {"input_ids": [0, *range(len(text.split())), 1]}


def test_exact_count_uses_the_tokenizer():
    budget = TokenBudget(CountingTokenizer(), max_tokens=7)
    assert budget.count("a b c") == 5
    assert budget.fits("a b c d e")
    assert not budget.fits("a b c d e f")


def test_truncate_keeps_the_longest_fitting_prefix():
    budget = TokenBudget(CountingTokenizer(), max_tokens=6)
    assert budget.truncate("one two three four five six") == "one two three four"
    assert budget.truncate("short") == "short"


def test_estimate_overcounts_long_words_and_punctuation():
    budget = TokenBudget(None)
    assert not budget.exact
    assert budget.count("cat") == 3  # start + 1 + end
    assert budget.count("watercolour, portrait") == 2 + 3 + 1 + 2


def test_estimated_truncation_fits_77():
    budget = TokenBudget(None)
    long = ", ".join(["dramatic cinematic lighting"] * 40)
    cut = budget.truncate(long)
    assert budget.fits(cut) and len(cut) < len(long)
    assert not cut.endswith(",")


def test_budget_rejects_nonsense_limit():
    with pytest.raises(ValueError, match="max_tokens=2"):
        TokenBudget(None, max_tokens=2)
