"""Random-weight stand-ins of every family, for tests, CI and the ``tiny`` engine.

Production code reaches them only through the engine registry (``pipelines.app.engines``);
an import-linter contract keeps every other package off them. A new family's stand-in is one
module here, listed in :data:`TINY_WEIGHTS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

from pipelines.tiny.flux2_klein import tiny_flux2_weights
from pipelines.tiny.sd15_faceid import tiny_sd15_weights
from pipelines.tiny.sdxl_faceid import tiny_sdxl_weights

# family id -> (cache_dir) -> (base folder, FaceID adapter folder or None, weight file or None)
TinyWeights = Callable[[Path], tuple[Path, Path | None, str | None]]
TINY_WEIGHTS: Mapping[str, TinyWeights] = MappingProxyType(
    {
        "sd15-faceid": tiny_sd15_weights,
        "sdxl-faceid": tiny_sdxl_weights,
        "flux2-klein-edit": tiny_flux2_weights,
    }
)
