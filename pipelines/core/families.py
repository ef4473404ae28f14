"""The model families the app can render with: one table that the settings, the engines, the
request validation, the README and the banner all read.

A family is a generator (diffusers pipeline class and default weights) plus how identity gets in
(an IP-Adapter FaceID embedding, or editing the selfie itself), its licence class, default size
and steps, and how its text encoder reads a prompt (token limit, chat template, the instruction
that wraps a method's prompt). Data only, no torch: the code that renders a family is its module
in ``pipelines/models/`` (listed in :mod:`pipelines.models.registry`), and its random-weight
stand-in is its module in ``pipelines/tiny/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from pipelines.core.errors import InputError
from pipelines.core.limits import LIMITS, Limit

LICENCE_RESEARCH = "research-only"
LICENCE_COMMERCIAL = "commercial"
FAMILY_SETTING = "BECOME_MODEL_FAMILY"


class UnknownFamilyError(InputError):
    """A model family id that is not in :data:`FAMILIES`."""


@dataclass(frozen=True)
class ModelFamily:
    """One generator family: what loads, how identity gets in, and how prompts are read."""

    id: str
    title: str  # in words, for the banner and the README
    base_model: str  # default hub id (BECOME_BASE_MODEL)
    licence: str  # LICENCE_RESEARCH or LICENCE_COMMERCIAL: the generator weights' class
    licence_detail: str  # which weights carry which licence, in words
    size: int  # default height and width in px
    size_limit: Limit  # the sizes this family can render (height and width alike)
    num_inference_steps: int
    guidance_scale: float
    token_limit: int  # tokens the text encoder reads, special and template tokens included
    text_encoder: str  # in words, for messages
    tokenizer_folders: tuple[str, ...]  # subfolders of the base model; all must fit the limit
    gpu_memory: str  # README: weights in half precision, from parameter counts (not measured)
    chat_template: bool = False  # the encoder reads the prompt inside its chat template
    instruction: str = "{prompt}"  # wraps a method's prompt; part of the final prompt
    negative_prompt: bool = True  # whether the model reads a negative prompt
    reads_guidance: bool = True  # False: step-distilled, guidance_scale is fixed at the default
    faceid_adapter: str | None = None  # default hub id (BECOME_FACEID_ADAPTER); None = none
    faceid_weight: str | None = None  # default file name (BECOME_FACEID_WEIGHT)
    # the identity judge to run with it (BECOME_IDENTITY_PACK), in words, for the README
    identity_judge: str = "the face pack's ArcFace (`buffalo_l`, research-only, as the family)"

    @property
    def uses_faceid(self) -> bool:
        """Whether identity comes from an IP-Adapter FaceID embedding."""
        return self.faceid_weight is not None

    @property
    def identity(self) -> str:
        """How identity gets into the output, in words."""
        if self.uses_faceid:
            return "IP-Adapter FaceID (insightface ArcFace embedding)"
        return "edits the selfie itself (passed as the reference image); no face adapter"

    @property
    def limits(self) -> Mapping[str, Limit]:
        """The shared :data:`~pipelines.core.limits.LIMITS`, with this family's size limit."""
        return MappingProxyType(
            {
                **LIMITS,
                "height": _sized(self.size_limit, "height in px"),
                "width": _sized(self.size_limit, "width in px"),
            }
        )

    def wrap(self, prompt: str) -> str:
        """``prompt`` inside this family's instruction: the final prompt as rendered."""
        return self.instruction.replace("{prompt}", prompt)


def _sized(limit: Limit, label: str) -> Limit:
    return Limit(limit.low, limit.high, label, limit.multiple_of)


_FACEID_RESEARCH = (
    "IP-Adapter FaceID weights (h94/IP-Adapter-FaceID) and insightface's buffalo_l face models "
    "are for non-commercial research only"
)

FAMILIES: Mapping[str, ModelFamily] = MappingProxyType(
    {
        f.id: f
        for f in (
            ModelFamily(
                id="sd15-faceid",
                title="Stable Diffusion 1.5 + IP-Adapter FaceID",
                base_model="stable-diffusion-v1-5/stable-diffusion-v1-5",
                licence=LICENCE_RESEARCH,
                licence_detail="SD-1.5: CreativeML OpenRAIL-M; " + _FACEID_RESEARCH,
                size=512,
                size_limit=LIMITS["height"],
                num_inference_steps=30,
                guidance_scale=6.0,
                token_limit=77,
                text_encoder="CLIP ViT-L/14 text encoder",
                tokenizer_folders=("tokenizer",),
                gpu_memory="~2.1 GB weights (1.07 B parameters)",
                faceid_adapter="h94/IP-Adapter-FaceID",
                faceid_weight="ip-adapter-faceid_sd15.bin",
            ),
            ModelFamily(
                id="sdxl-faceid",
                title="Stable Diffusion XL + IP-Adapter FaceID SDXL",
                base_model="stabilityai/stable-diffusion-xl-base-1.0",
                licence=LICENCE_RESEARCH,
                licence_detail="SDXL: CreativeML OpenRAIL++-M; " + _FACEID_RESEARCH,
                size=1024,
                # SDXL was trained around 1024 px; below 512 it degrades, above 1536 it repeats
                size_limit=Limit(64, 1536, "size in px", multiple_of=8),
                num_inference_steps=30,
                guidance_scale=5.0,
                token_limit=77,  # both CLIP encoders (ViT-L and OpenCLIP bigG) read 77
                text_encoder="CLIP ViT-L and OpenCLIP bigG text encoders",
                tokenizer_folders=("tokenizer", "tokenizer_2"),
                gpu_memory="~6.9 GB weights (3.47 B parameters)",
                faceid_adapter="h94/IP-Adapter-FaceID",
                faceid_weight="ip-adapter-faceid_sdxl.bin",
            ),
            ModelFamily(
                id="flux2-klein-edit",
                title="FLUX.2 [klein] 4B, editing the selfie",
                base_model="black-forest-labs/FLUX.2-klein-4B",
                licence=LICENCE_COMMERCIAL,
                licence_detail=(
                    "FLUX.2 [klein] 4B and its Qwen3 text encoder: Apache-2.0. The face "
                    "detection pack (insightface buffalo_l) is still research-only"
                ),
                size=1024,
                # latents are 2x2-patched /8 VAE latents: sides are multiples of 16
                size_limit=Limit(64, 2048, "size in px", multiple_of=16),
                num_inference_steps=4,  # step-distilled
                guidance_scale=1.0,  # the distilled model ignores guidance
                token_limit=512,  # diffusers' max_sequence_length, chat template included
                text_encoder="Qwen3 text encoder",
                tokenizer_folders=("tokenizer",),
                gpu_memory="~16 GB weights (7.98 B parameters, 4.02 B of them the Qwen3 encoder)",
                chat_template=True,
                instruction=(
                    "Restyle this photo of a person as: {prompt}. Keep the same person: the "
                    "face, identity, facial features and expression exactly as in the photo. "
                    "Change only the style, medium, colours, lighting and background."
                ),
                negative_prompt=False,  # distilled, no classifier-free guidance
                reads_guidance=False,
                identity_judge=(
                    "`BECOME_IDENTITY_PACK=auraface`: AuraFace (`fal/AuraFace-v1`, Apache-2.0 "
                    "recogniser), the face pack's ArcFace beside it"
                ),
            ),
        )
    }
)
DEFAULT_FAMILY = "sd15-faceid"


def markdown_table() -> str:
    """The README's table of families, written from :data:`FAMILIES` (a test keeps them equal)."""
    lines = [
        "| `BECOME_MODEL_FAMILY` | generator and identity | default weights | licence class | "
        "identity judge | default size, steps | text encoder limit | "
        "GPU memory (half precision) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in FAMILIES.values():
        weights = f"`{f.base_model}`"
        if f.uses_faceid:
            weights += f" + `{f.faceid_adapter}` / `{f.faceid_weight}`"
        lines.append(
            f"| `{f.id}` | {f.title}; identity: {f.identity} | {weights} | **{f.licence}**: "
            f"{f.licence_detail} | {f.identity_judge} | {f.size} px, "
            f"{f.num_inference_steps} steps | {f.token_limit} tokens | {f.gpu_memory} |"
        )
    return "\n".join(lines)


def get_family(family_id: str) -> ModelFamily:
    """The family ``family_id``; :class:`UnknownFamilyError` names the setting and the choices."""
    try:
        return FAMILIES[family_id]
    except KeyError:
        raise UnknownFamilyError(
            f"{FAMILY_SETTING}={family_id!r} is not a model family: use one of "
            f"{', '.join(FAMILIES)}"
        ) from None
