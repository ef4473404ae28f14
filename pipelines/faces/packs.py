"""Face packs the app knows by name and fetches from the Hugging Face Hub.

insightface downloads its own packs (``buffalo_l``, ``antelopev2``) from its release server;
packs published on the Hub are fetched here with ``huggingface_hub.snapshot_download`` into the
same layout (``<root>/models/<name>/*.onnx``), so :class:`~pipelines.faces.analysis.FaceAnalyzer`
loads them like any other pack. Only the files the app loads (detection + recognition) are
fetched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pipelines.faces.analysis import FaceModelsMissingError, face_pack_dir
from pipelines.weights import WeightsRefused, locate, pin_for

__all__ = ["HUB_PACKS", "HubPack", "fetch_hub_pack", "hub_pack"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HubPack:
    """An insightface-compatible pack on the Hub: where it is, what to fetch, its licences."""

    name: str  # the folder under <root>/models, and the name BECOME_IDENTITY_PACK takes
    repo_id: str
    files: tuple[str, ...]  # the detection and recognition models (all the app loads)
    licence: str  # in words, per file where they differ


HUB_PACKS: dict[str, HubPack] = {
    "auraface": HubPack(
        name="auraface",
        repo_id="fal/AuraFace-v1",
        # glintr100.onnx is AuraFace's recogniser; scrfd_10g_bnkps.onnx is the repo's detector.
        # The repo's landmark/gender models (150 MB) are not loaded by the app: not fetched.
        files=("glintr100.onnx", "scrfd_10g_bnkps.onnx", "LICENSE.md"),
        licence=(
            "AuraFace recogniser (glintr100.onnx): Apache-2.0; the detector shipped beside it "
            "(scrfd_10g_bnkps.onnx) is insightface's SCRFD"
        ),
    ),
}


def hub_pack(pack: str) -> HubPack | None:
    """The Hub pack called ``pack`` (its name, e.g. ``auraface``, or its repo id), or None."""
    for known in HUB_PACKS.values():
        if pack in (known.name, known.repo_id):
            return known
    return None


def fetch_hub_pack(
    pack: str, root: Path, allow_download: bool, allow_unverified: bool = False
) -> str | Path:
    """What to hand :class:`FaceAnalyzer` for ``pack``: a local folder once a Hub pack is here.

    A pack that is not a Hub pack is returned as it was given. A Hub pack missing locally is
    downloaded at its pinned commit into ``root/models/<name>`` when ``allow_download``; offline
    it raises :class:`FaceModelsMissingError` saying where to put the files. Its files, on disk
    or downloaded, must match their pins (:mod:`pipelines.weights`) unless ``allow_unverified``.
    """
    known = hub_pack(pack)
    if known is None:
        return pack
    target = Path(root).expanduser() / "models" / known.name
    local = face_pack_dir(known.name, Path(root))
    if local is not None:
        return _checked(known, Path(local), allow_unverified)
    if not allow_download:
        raise FaceModelsMissingError(
            f"Face pack {pack!r} ({known.repo_id}) is not in {target} and downloads are off "
            f"(HF_HUB_OFFLINE): run `hf download {known.repo_id} {' '.join(known.files)} "
            f"--revision {_revision(known)} --local-dir {target}` on a machine with a network, "
            "or unset HF_HUB_OFFLINE"
        )
    from huggingface_hub import snapshot_download

    pin = pin_for(known.repo_id)
    revision = pin.revision if pin is not None else None
    log.info("downloading face pack %s from %s into %s", known.name, known.repo_id, target)
    try:
        snapshot_download(
            known.repo_id, revision=revision, local_dir=target, allow_patterns=list(known.files)
        )
    except Exception as exc:  # network, auth or disk: the measure says why, the app goes on
        raise FaceModelsMissingError(
            f"Face pack {pack!r} could not be downloaded from {known.repo_id} ({exc})"
        ) from exc
    local = face_pack_dir(known.name, Path(root))
    if local is None:
        raise FaceModelsMissingError(
            f"Face pack {pack!r}: {known.repo_id} gave no .onnx files in {target}"
        )
    return _checked(known, Path(local), allow_unverified)


def _revision(known: HubPack) -> str:
    pin = pin_for(known.repo_id)
    return pin.revision if pin is not None else "main"


def _checked(known: HubPack, folder: Path, allow_unverified: bool) -> Path:
    """``folder`` once its pinned files match their sha256 (:func:`pipelines.weights.locate`,
    the folder standing in for the Hub pack); else :class:`FaceModelsMissingError` naming the
    file (or, with ``allow_unverified``, the folder as it is)."""
    try:
        locate(
            str(folder),
            default=known.repo_id,
            allow_unverified=allow_unverified,
            what=f"Face pack {known.name!r} ({known.repo_id})",
        )
    except WeightsRefused as exc:
        raise FaceModelsMissingError(str(exc)) from None
    return folder
