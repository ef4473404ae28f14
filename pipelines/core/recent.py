"""The last comparisons this server rendered, in memory only, so raters vote on what they saw."""

from __future__ import annotations

import threading
from collections import OrderedDict

from pipelines.core.errors import InputError
from pipelines.core.results import ComparisonResult


class UnknownComparisonError(InputError):
    """A rating names a comparison this server no longer (or never) rendered."""


class RecentComparisons:
    """The last ``capacity`` comparisons. The selfie's face crop is dropped: only generated
    outputs are kept, and only until evicted."""

    def __init__(self, capacity: int = 96) -> None:  # ~96 rows x 5 images at 512 px: ~400 MB
        self._items: OrderedDict[str, ComparisonResult] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def add(self, result: ComparisonResult) -> None:
        """Keep ``result`` (without its face crop), evicting the oldest beyond capacity."""
        slim = result.without_face()
        with self._lock:
            self._items[result.comparison_id] = slim
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)

    def get(self, comparison_id: str) -> ComparisonResult:
        """The comparison, or :class:`UnknownComparisonError` saying to generate it again."""
        with self._lock:
            found = self._items.get(comparison_id)
        if found is None:
            raise UnknownComparisonError(
                f"comparison {comparison_id!r} is not in memory any more (the app restarted or "
                "many comparisons ran since): generate it again, then rate"
            )
        return found
