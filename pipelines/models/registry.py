"""The pipeline class of every model family, by family id.

The family table (:data:`pipelines.core.families.FAMILIES`) holds what a family *is* (weights,
licence, sizes, how its encoder reads a prompt) and imports no torch; this registry holds the
code that renders it. A new family is one module in ``pipelines/models/`` whose pipeline class
names its ``family_id``, listed below; a test keeps the two tables' keys equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from pipelines.core.families import get_family
from pipelines.models.base import BatchedPipeline
from pipelines.models.flux2_klein import Flux2EditPipeline
from pipelines.models.sd15_faceid import PortraitPipeline
from pipelines.models.sdxl_faceid import SDXLPortraitPipeline

PIPELINES: Mapping[str, type[BatchedPipeline]] = MappingProxyType(
    {cls.family_id: cls for cls in (PortraitPipeline, SDXLPortraitPipeline, Flux2EditPipeline)}
)


def pipeline_class(family_id: str) -> type[BatchedPipeline]:
    """The pipeline class of ``family_id``; an unknown id raises ``UnknownFamilyError``."""
    return PIPELINES[get_family(family_id).id]
