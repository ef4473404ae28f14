"""Where a model's files come from, checked against the pin table before anything loads them.

The order, for a model named by a setting (a Hub id or a local folder):

1. a **local folder**: its pinned files must match the pin of the model it stands in for;
2. the **Hugging Face cache** at the pinned commit (filled by the Hub, or offline by
   ``python -m pipelines.weights fetch``);
3. the **Hub** at the pinned commit (``huggingface_hub``'s own download and cache), unless
   ``HF_HUB_OFFLINE`` is set or the Hub does not answer;
4. else **refused**, with the command that fills the cache.

Files that differ from their pins are refused (:class:`~.verify.WeightsMismatch`). Weights
that are not in the table (another Hub id, or a folder of one's own) load only when the caller
allows unverified files (``BECOME_UNVERIFIED_WEIGHTS=1`` in the app), and say so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pipelines.core.hub import hub_offline, hub_reachable
from pipelines.weights.pins import UNPINNED, ModelPin, pin_for
from pipelines.weights.verify import WeightsRefused, verify_folder

log = logging.getLogger(__name__)

UNVERIFIED_SETTING = "BECOME_UNVERIFIED_WEIGHTS"
FETCH_COMMAND = "python -m pipelines.weights fetch"


@dataclass(frozen=True)
class Weights:
    """What a loader reads: a folder (or, unverified, a Hub id), and how it was found."""

    source: str  # a local folder for pinned weights; a Hub id only when unverified
    origin: str  # "local folder" | "HF cache" | "Hub"
    pin: ModelPin | None  # None: unverified
    local_files_only: bool | None  # what to hand from_pretrained (None: the library default)

    @property
    def verified(self) -> bool:
        """Whether every pinned file was checked against its sha256."""
        return self.pin is not None

    def describe(self) -> str:
        """In words, for the trace, the banner's details and logs."""
        if self.pin is None:
            return f"{self.source} (unverified: not in the pin table)"
        return f"{self.pin.repo_id}@{self.pin.revision[:8]}, verified ({self.origin})"


def looks_like_folder(source: str) -> bool:
    """Whether ``source`` names a folder rather than a Hub id (``owner/name``)."""
    return (
        Path(source).expanduser().exists()
        or source.startswith(("/", ".", "~"))
        or source.count("/") != 1
    )


def is_here(source: str, probe: str, only: tuple[str, ...] | None = None) -> bool:
    """Whether ``source`` loads without the network: a local folder holding ``probe``, a
    pinned model's commit in the HF cache (``only`` those of its files the caller reads), or
    (unpinned) ``probe`` in the HF cache."""
    from pipelines.core.hub import is_cached

    pin = None if looks_like_folder(source) else _subset(pin_for(source), only)
    if pin is not None:
        return cached_snapshot(pin) is not None
    return is_cached(source, probe)


def cached_snapshot(pin: ModelPin) -> Path | None:
    """The HF cache's folder of ``pin``'s commit when it holds every hashed file, else None."""
    from huggingface_hub import try_to_load_from_cache

    folder = None
    for file in pin.files:
        hit = try_to_load_from_cache(pin.repo_id, file.path, revision=pin.revision)
        if not isinstance(hit, str):
            return None
        here = Path(hit)
        for _ in Path(file.path).parts:
            here = here.parent
        folder = here
    return folder


def locate(
    source: str,
    *,
    default: str | None = None,
    allow_unverified: bool = False,
    offline: bool | None = None,
    what: str = "",
    only: tuple[str, ...] | None = None,
) -> Weights:
    """Finds and checks the files of ``source`` (a Hub id or a local folder).

    ``default``: the Hub id whose pin a local folder must match (the setting's default; by
    default ``source`` itself). ``offline``: stay off the Hub (None: ``HF_HUB_OFFLINE``).
    ``what`` names the setting in messages; ``only``: the pinned files the caller reads (default:
    all of the pin's). Raises
    :class:`WeightsRefused` when the files differ from their pins, cannot be found, or are not
    pinned and ``allow_unverified`` is False.
    """
    label = f"{what}: " if what else ""
    path = Path(source).expanduser()
    if looks_like_folder(source):
        if not path.is_dir():
            raise WeightsRefused(f"{label}the folder {source} does not exist")
        pin = _subset(pin_for(default or source), only)
        if pin is not None:
            try:
                verify_folder(path, pin)
                return Weights(str(path), "local folder", pin, True)
            except WeightsRefused:
                if not allow_unverified:
                    raise
        if allow_unverified:
            return Weights(str(path), "local folder", None, True)
        raise WeightsRefused(
            f"{label}the folder {source} is not a pinned model; to load your own weights "
            f"unverified, set {UNVERIFIED_SETTING}=1"
        )
    pin = _subset(pin_for(source), only)
    if pin is None:
        if allow_unverified:
            stay_local = hub_offline() if offline is None else offline
            return Weights(source, "Hub", None, True if stay_local else None)
        why = UNPINNED.get(source, "")
        raise WeightsRefused(
            f"{label}{source} is not in the pin table (pipelines/weights/pins.py"
            + (f"; {why}" if why else "")
            + f"); to load it unverified, set {UNVERIFIED_SETTING}=1"
        )
    folder, origin = fetch_pinned(pin, offline=offline)
    return Weights(str(folder), origin, pin, True)


def _subset(pin: ModelPin | None, only: tuple[str, ...] | None) -> ModelPin | None:
    if pin is None or only is None:
        return pin
    return pin.subset(only)


def fetch_pinned(pin: ModelPin, *, offline: bool | None = None) -> tuple[Path, str]:
    """(the checked folder of ``pin``'s files, where it came from): the HF cache at the pinned
    commit, else the Hub (``snapshot_download`` at that commit), else :class:`WeightsRefused`
    saying what to run."""
    folder = cached_snapshot(pin)
    if folder is not None:
        verify_folder(folder, pin)
        return folder, "HF cache"
    offline = hub_offline() if offline is None else offline
    hint = f"; fill the cache with: {FETCH_COMMAND} {pin.repo_id}"
    if offline:
        raise WeightsRefused(
            f"{pin.repo_id} ({pin.what}) is not in the Hugging Face cache at revision "
            f"{pin.revision[:12]} and HF_HUB_OFFLINE is set{hint}"
        )
    if not hub_reachable(pin.repo_id):  # asked with a short timeout: downloads retry for long
        raise WeightsRefused(
            f"{pin.repo_id} ({pin.what}) is not in the Hugging Face cache at revision "
            f"{pin.revision[:12]} and the Hub is not reachable{hint}"
        )
    from huggingface_hub import snapshot_download

    log.info("downloading %s at %s", pin.repo_id, pin.revision)
    try:
        folder = Path(
            snapshot_download(pin.repo_id, revision=pin.revision, allow_patterns=pin.patterns)
        )
    except Exception as exc:  # network, auth or disk: refused, saying why
        raise WeightsRefused(
            f"{pin.repo_id} could not be downloaded at {pin.revision[:12]} ({exc}){hint}"
        ) from exc
    verify_folder(folder, pin)
    return folder, "Hub"
