"""Where weights can come from: a local folder, the local Hugging Face cache, or the Hub.

The one definition of "offline" for every loader (engines, CLIP, face packs): ``HF_HUB_OFFLINE``
as huggingface_hub read it at import, or as the environment says now.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def hub_offline() -> bool:
    """Whether loaders must stay off the network (``HF_HUB_OFFLINE``)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "") in {"1", "true"}


def _local_dir_with(path: str, filename: str) -> bool:
    p = Path(path).expanduser()
    return p.is_dir() and (p / filename).exists()


def is_cached(repo_or_dir: str, filename: str) -> bool:
    """True when ``filename`` is available without the network (local folder or HF cache)."""
    if _local_dir_with(repo_or_dir, filename):
        return True
    if Path(repo_or_dir).expanduser().exists() or repo_or_dir.count("/") != 1:
        return False
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(repo_or_dir, filename)
    return isinstance(hit, str)


def hub_reachable(repo_id: str, timeout: float = 3.0) -> bool:
    """Whether the Hub answers for ``repo_id`` now (never when offline)."""
    if hub_offline():
        return False
    from huggingface_hub import HfApi

    try:
        HfApi().model_info(repo_id, timeout=timeout)
    except Exception as exc:  # any network or auth failure means "not reachable now"
        log.info("Hub not reachable for %s: %s", repo_id, exc)
        return False
    return True
