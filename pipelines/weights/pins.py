"""The one table of pinned model files: for every model the app downloads by default, the Hub
repo, the commit it is read at, and the sha256 of each file the app reads.

Every load checks its files against this table, whatever their source (:mod:`.resolve`). A
file's sha256 is the Hub's own LFS object id for weights; for the small text files of the two
sentence encoders it is that of the files published at the pinned commit. Where a model's small
files (configs, tokenizers, schedulers) have no published sha256, they are listed as ``unhashed``
patterns: fetched at the pinned commit (so the Hub's content-addressed commit names them), not
checked byte for byte. ``python -m pipelines.weights check`` compares the table with the Hub
(with a network) and ``python -m pipelines.weights table`` prints it as Markdown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class PinnedFile:
    """One file of a pinned model: its path in the repo, its sha256 and size in bytes."""

    path: str
    sha256: str
    size: int | None = None

    def __post_init__(self) -> None:
        if not _SHA256.fullmatch(self.sha256):
            raise ValueError(f"pin for {self.path!r}: sha256={self.sha256!r} is not 64 hex digits")


@dataclass(frozen=True)
class ModelPin:
    """A model on the Hub at one commit, and the files of it that the app reads."""

    repo_id: str
    revision: str  # a commit (40 hex digits), never a branch: a branch moves
    files: tuple[PinnedFile, ...]  # every one hash-checked on load
    what: str  # in words, for messages and the README table
    # small files fetched at the pinned commit without a published sha256 (glob patterns)
    unhashed: tuple[str, ...] = ()
    variant: str | None = None  # diffusers' weight variant the hashed files are ("fp16")

    def __post_init__(self) -> None:
        if not _COMMIT.fullmatch(self.revision):
            raise ValueError(
                f"pin for {self.repo_id}: revision={self.revision!r} is not a commit (40 hex)"
            )
        if not self.files:
            raise ValueError(f"pin for {self.repo_id} lists no hashed file")

    @property
    def patterns(self) -> list[str]:
        """What a download fetches: the hashed files and the unhashed patterns."""
        return [f.path for f in self.files] + list(self.unhashed)

    def subset(self, paths: tuple[str, ...]) -> ModelPin | None:
        """This pin with only the hashed files at ``paths`` (one adapter of a repo of several),
        or None when the pin does not list one of them (that file is not pinned)."""
        files = tuple(f for f in self.files if f.path in paths)
        if not paths or len(files) != len(set(paths)):
            return None
        return replace(self, files=files)

    def file(self, path: str) -> PinnedFile | None:
        """The pinned file at ``path``, or None."""
        return next((f for f in self.files if f.path == path), None)


def _f(path: str, sha256: str, size: int | None = None) -> PinnedFile:
    return PinnedFile(path, sha256, size)


# Diffusers folders: configs, schedulers and tokenizers have no published sha256
_DIFFUSERS_SMALL_FILES = ("*.json", "*.txt")
_ENCODER = "learned method: contextual encoder"

MINILM_PIN = ModelPin(
    repo_id="sentence-transformers/all-MiniLM-L6-v2",
    revision="1110a243fdf4706b3f48f1d95db1a4f5529b4d41",
    what=_ENCODER,
    files=(
        _f(
            "model.safetensors",
            "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            90868376,
        ),
        _f("config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41", 612),
        _f(
            "tokenizer.json",
            "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            466247,
        ),
        _f("vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3", 231508),
        _f(
            "tokenizer_config.json",
            "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
            350,
        ),
        _f(
            "special_tokens_map.json",
            "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
            112,
        ),
    ),
)

MPNET_PIN = ModelPin(
    repo_id="sentence-transformers/all-mpnet-base-v2",
    revision="e8c3b32edf5434bc2275fc9bab85f82640a19130",
    what=_ENCODER,
    files=(
        _f(
            "model.safetensors",
            "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
            437971872,
        ),
        _f("config.json", "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0", 571),
        _f(
            "tokenizer.json",
            "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
            466021,
        ),
        _f("vocab.txt", "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada", 231536),
        _f(
            "tokenizer_config.json",
            "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268",
            363,
        ),
        _f(
            "special_tokens_map.json",
            "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba",
            239,
        ),
    ),
)

CLIP_PIN = ModelPin(
    repo_id="openai/clip-vit-large-patch14",
    revision="32bd64288804d66eefd0ccbe215aa642df71cc41",
    what="CLIP: inversion, ensemble, style and prompt measures",
    files=(
        _f(
            "model.safetensors",
            "a2bf730a0c7debf160f7a6b50b3aaf3703e7e88ac73de7a314903141db026dcb",
            1710540580,
        ),
        _f("config.json", "8a09b467700c58138c29d53c605b34ebc69beaadd13274a8a2af8ad2c2f4032a"),
        _f("merges.txt", "9fd691f7c8039210e0fced15865466c65820d09b63988b0174bfe25de299051a"),
        _f(
            "preprocessor_config.json",
            "910e70b3956ac9879ebc90b22fb3bc8a75b6a0677814500101a4c072bd7857bd",
        ),
        _f(
            "special_tokens_map.json",
            "f8c0d6c39aee3f8431078ef6646567b0aba7f2246e9c54b8b99d55c22b707cbf",
        ),
        _f(
            "tokenizer_config.json",
            "deef455e52fa5e8151e339add0582e4235f066009601360999d3a9cda83b1129",
        ),
        _f("tokenizer.json", "a83e0809aa4c3af7208b2df632a7a69668c6d48775b3c3fe4e1b1199d1f8b8f4"),
        _f("vocab.json", "3f0c4f7d2086b61b38487075278ea9ed04edb53a03cbb045b86c27190fa8fb69"),
    ),
)

SAFETY_PIN = ModelPin(
    repo_id="CompVis/stable-diffusion-safety-checker",
    revision="cb41f3a270d63d454d385fc2e4f571c487c253c5",
    what="safety checker",
    # the published sha256 is of the PyTorch file (read with torch.load(weights_only=True))
    files=(
        _f(
            "pytorch_model.bin",
            "64b8393f1afd5a0c1ed2aa5f341fa7c08286839a48f3743162a76a2835c808bd",
            1216067303,
        ),
    ),
    unhashed=("config.json", "preprocessor_config.json"),
)

AURAFACE_PIN = ModelPin(
    repo_id="fal/AuraFace-v1",
    revision="af6d057c9b0ec4071d4c49c80e3539258798b609",
    what="second identity judge (BECOME_IDENTITY_PACK=auraface)",
    files=(
        _f(
            "glintr100.onnx",
            "a7933ea5330113b01c9b60351d8f4c33003f145d8470ac5f0e52ee2effe25c60",
            260694151,
        ),
        _f(
            "scrfd_10g_bnkps.onnx",
            "5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91",
            16923827,
        ),
    ),
    unhashed=("LICENSE.md",),
)

SD15_PIN = ModelPin(
    repo_id="stable-diffusion-v1-5/stable-diffusion-v1-5",
    revision="451f4fe16113bff5a5d2269ed5ad43b0592e9a14",
    what="sd15-faceid base model",
    variant="fp16",  # the half-precision files are the ones published with their sha256
    files=(
        _f(
            "unet/diffusion_pytorch_model.fp16.safetensors",
            "c83908253f9a64d08c25fc90874c9c8aef9a329ce1ca5fb909d73b0c83d1ea21",
            1719125304,
        ),
        _f(
            "vae/diffusion_pytorch_model.fp16.safetensors",
            "4fbcf0ebe55a0984f5a5e00d8c4521d52359af7229bb4d81890039d2aa16dd7c",
            167335342,
        ),
        _f(
            "text_encoder/model.fp16.safetensors",
            "77795e2023adcf39bc29a884661950380bd093cf0750a966d473d1718dc9ef4e",
            246144864,
        ),
    ),
    unhashed=_DIFFUSERS_SMALL_FILES,
)

SDXL_PIN = ModelPin(
    repo_id="stabilityai/stable-diffusion-xl-base-1.0",
    revision="462165984030d82259a11f4367a4eed129e94a7b",
    what="sdxl-faceid base model",
    variant="fp16",
    files=(
        _f(
            "unet/diffusion_pytorch_model.fp16.safetensors",
            "83e012a805b84c7ca28e5646747c90a243c65c8ba4f070e2d7ddc9d74661e139",
            5135149760,
        ),
        _f(
            "vae/diffusion_pytorch_model.fp16.safetensors",
            "bcb60880a46b63dea58e9bc591abe15f8350bde47b405f9c38f4be70c6161e68",
            167335342,
        ),
        _f(
            "text_encoder/model.fp16.safetensors",
            "660c6f5b1abae9dc498ac2d21e1347d2abdb0cf6c0c0c8576cd796491d9a6cdd",
            246144152,
        ),
        _f(
            "text_encoder_2/model.fp16.safetensors",
            "ec310df2af79c318e24d20511b601a591ca8cd4f1fce1d8dff822a356bcdb1f4",
            1389382176,
        ),
    ),
    unhashed=_DIFFUSERS_SMALL_FILES,
)

FLUX2_KLEIN_PIN = ModelPin(
    repo_id="black-forest-labs/FLUX.2-klein-4B",
    revision="e7b7dc27f91deacad38e78976d1f2b499d76a294",
    what="flux2-klein-edit base model",
    files=(
        _f(
            "transformer/diffusion_pytorch_model.safetensors",
            "9f29f9edcfdae452a653ffb51a534ca4decd389952c225724ff3b94042612a6e",
            7751109744,
        ),
        _f(
            "vae/diffusion_pytorch_model.safetensors",
            "ca70d2202afe6415bdbcb8793ba8cd99fd159cfe6192381504d6c4d3036e0f04",
            168120878,
        ),
        _f(
            "text_encoder/model-00001-of-00002.safetensors",
            "8c0506e7f4936fa7e26183a4fd8da4e2bdbc5990ba64ae441f965d51228f36ea",
            4967215360,
        ),
        _f(
            "text_encoder/model-00002-of-00002.safetensors",
            "82f2bd839378541b0557bfabaf37c7d3d637071fdcb73302dedd7cf61162ce07",
            3077766632,
        ),
        _f(
            "text_encoder/model.safetensors.index.json",
            "06b3d5319b6d76d1a4a2433419180016cfd54ed62d086a5e6567a809f8c82634",
            32855,
        ),
    ),
    unhashed=_DIFFUSERS_SMALL_FILES,
)

FACEID_PIN = ModelPin(
    repo_id="h94/IP-Adapter-FaceID",
    revision="43907e6f44d079bf1a9102d9a6e56aef7a219bae",
    what="IP-Adapter FaceID adapters (sd15-faceid, sdxl-faceid)",
    files=(
        _f(
            "ip-adapter-faceid_sd15.bin",
            "201344e22e6f55849cf07ca7a6e53d8c3b001327c66cb9710d69fd5da48a8da7",
            96740574,
        ),
        _f(
            "ip-adapter-faceid_sdxl.bin",
            "f455fed24e207c878ec1e0466b34a969d37bab857c5faa4e8d259a0b4ff63d7e",
            1071149741,
        ),
    ),
)

PINS: Mapping[str, ModelPin] = MappingProxyType(
    {
        p.repo_id: p
        for p in (
            MINILM_PIN,
            MPNET_PIN,
            CLIP_PIN,
            SAFETY_PIN,
            AURAFACE_PIN,
            SD15_PIN,
            SDXL_PIN,
            FLUX2_KLEIN_PIN,
            FACEID_PIN,
        )
    }
)


# Models the app can download that the table cannot pin yet: no published sha256 of their
# weights was found. They load only with BECOME_UNVERIFIED_WEIGHTS=1, and say why otherwise.
UNPINNED: Mapping[str, str] = MappingProxyType(
    {
        "yuvalkirstain/PickScore_v1": "PickScore: no published sha256 of its weights",
        "adams-story/HPSv2-hf": "HPSv2 (transformers layout): no published sha256 of its weights",
        "laion/CLIP-ViT-H-14-laion2B-s32B-b79K": (
            "PickScore's and HPSv2's tokenizer and image processor: text files, no weights read"
        ),
    }
)


def pin_for(repo_id: str) -> ModelPin | None:
    """The pin of the Hub repo ``repo_id``, or None when the table has none."""
    return PINS.get(repo_id)


def markdown_table() -> str:
    """The table as Markdown: one line per pinned file (the README's copy is kept equal)."""
    lines = [
        "| model | used for | revision | file | sha256 |",
        "|---|---|---|---|---|",
    ]
    for pin in PINS.values():
        for f in pin.files:
            lines.append(
                f"| `{pin.repo_id}` | {pin.what} | `{pin.revision[:12]}` | `{f.path}` | "
                f"`{f.sha256[:16]}…` |"
            )
        if pin.unhashed:
            patterns = ", ".join(f"`{p}`" for p in pin.unhashed)
            lines.append(
                f"| `{pin.repo_id}` | {pin.what} | `{pin.revision[:12]}` | {patterns} | "
                "at the pinned commit, no published sha256 |"
            )
    for repo_id, why in UNPINNED.items():
        lines.append(f"| `{repo_id}` | {why} | — | — | not pinned: loads only unverified |")
    return "\n".join(lines)
