"""Typed settings, read once from environment variables.

Every variable the app reads is declared here and listed in the README's settings table.
Invalid values fail at start with a :class:`SettingsError` naming the variable and what it allows.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType

from pipelines.errors import InputError

ENGINES = ("auto", "diffusers", "tiny", "preview")
DEVICES = ("auto", "cuda", "mps", "cpu")
DTYPES = ("auto", "float32", "float16", "bfloat16")
INVERSION_MODES = ("fast", "pez")


@dataclass(frozen=True)
class Limit:
    """The allowed range of one request value, with the words a person reads it by."""

    low: float
    high: float
    label: str  # what the UI calls it
    multiple_of: int = 1

    def problem(self, name: str, value: float) -> str | None:
        """None when ``value`` is allowed, else a sentence naming ``name`` and the allowed range."""
        if not self.low <= value <= self.high:
            return f"{name}={value!r} is out of range: {self.label} must be {self.allowed}."
        if self.multiple_of > 1 and value % self.multiple_of:
            return (
                f"{name}={value!r} is not a multiple of {self.multiple_of}: {self.label} must be "
                f"{self.allowed}."
            )
        return None

    @property
    def allowed(self) -> str:
        """The allowed values in words: "a multiple of 8 from 64 to 1024"."""
        step = f"a multiple of {self.multiple_of} " if self.multiple_of > 1 else "a value "
        return f"{step}from {self.low} to {self.high}"


# The one table of request limits: the request, the settings, the pipeline, the style files and
# the UI widgets all read these. Keys are the request's (and diffusers') argument names.
LIMITS: Mapping[str, Limit] = MappingProxyType(
    {
        "num_inference_steps": Limit(1, 150, "steps"),
        "guidance_scale": Limit(0.0, 30.0, "guidance"),
        "ip_adapter_scale": Limit(0.0, 1.5, "identity strength"),
        "height": Limit(64, 1024, "height in px", multiple_of=8),  # the VAE works on /8 latents
        "width": Limit(64, 1024, "width in px", multiple_of=8),
        "seed": Limit(0, 2**32 - 1, "seed"),
        "prompt": Limit(1, 500, "characters in the base prompt"),  # the encoder reads 77 tokens
        "batch_size": Limit(1, 64, "prompts per UNet call"),
    }
)
MAX_SEED = int(LIMITS["seed"].high)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = PROJECT_ROOT / "assets"


class SettingsError(InputError):
    """An environment variable holds a value the app cannot use."""


@dataclass(frozen=True)
class Settings:
    """All runtime configuration. Field ``foo`` is read from ``BECOME_FOO``."""

    engine: str = "auto"
    base_model: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    faceid_adapter: str = "h94/IP-Adapter-FaceID"
    faceid_weight: str = "ip-adapter-faceid_sd15.bin"
    face_pack: str = "buffalo_l"
    face_root: Path = Path("~/.insightface").expanduser()
    face_det_size: int = 640
    # a second recogniser that judges identity, so the judge is not the conditioning model;
    # "" = the conditioning pack judges (the output's measures say which model judged)
    identity_pack: str = ""
    clip_model: str = "openai/clip-vit-large-patch14"
    inversion_mode: str = "fast"  # "fast" (rank the modifier banks) or "pez" (hard-prompt opt.)
    pez_steps: int = 300
    device: str = "auto"
    dtype: str = "auto"
    # request defaults, named as the request names them; env names kept (BECOME_STEPS, ...)
    num_inference_steps: int = field(default=30, metadata={"env": "BECOME_STEPS"})
    guidance_scale: float = field(default=6.0, metadata={"env": "BECOME_GUIDANCE"})
    size: int = 512  # default height and width
    batch_size: int = 0  # 0 = choose by device (see pipelines.runtime)
    data_dir: Path = PROJECT_ROOT / "data"
    assets_dir: Path = ASSETS_DIR
    learned_model: Path | None = None  # None = data_dir/learned/current.npz, else the bundled one
    feedback_repo: str = ""  # HF dataset repo id for syncing ratings; empty = local only
    feedback_token: str = field(default="", repr=False)
    staff_password: str = field(default="", repr=False)
    queue_concurrency: int = 1
    max_queue: int = 64

    def __post_init__(self) -> None:
        _check_choice("BECOME_ENGINE", self.engine, ENGINES)
        _check_choice("BECOME_DEVICE", self.device, DEVICES)
        _check_choice("BECOME_DTYPE", self.dtype, DTYPES)
        _check_choice("BECOME_INVERSION_MODE", self.inversion_mode, INVERSION_MODES)
        _check_range("BECOME_PEZ_STEPS", self.pez_steps, 1, 5000)
        for name, var, value in (
            ("num_inference_steps", "BECOME_STEPS", self.num_inference_steps),
            ("guidance_scale", "BECOME_GUIDANCE", self.guidance_scale),
            ("height", "BECOME_SIZE", self.size),
        ):
            if LIMITS[name].problem(name, value):
                raise SettingsError(f"{var}={value} is out of range: use {LIMITS[name].allowed}")
        _check_range("BECOME_FACE_DET_SIZE", self.face_det_size, 64, 2048)
        _check_range("BECOME_BATCH_SIZE", self.batch_size, 0, LIMITS["batch_size"].high)
        _check_range("BECOME_QUEUE_CONCURRENCY", self.queue_concurrency, 1, 256)
        _check_range("BECOME_MAX_QUEUE", self.max_queue, 1, 10_000)
        if self.face_det_size % 32:
            raise SettingsError(
                f"BECOME_FACE_DET_SIZE={self.face_det_size} is not allowed: use a multiple of 32"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``BECOME_*`` variables; unset ones keep their defaults."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            name = f.metadata.get("env", env_name(f.name))
            raw = env.get(name)
            if raw is None or raw.strip() == "":
                continue
            values[f.name] = _parse(name, raw.strip(), cls.__dataclass_fields__[f.name].default)
        return cls(**values)  # type: ignore[arg-type]

    @property
    def ratings_db(self) -> Path:
        return self.data_dir / "ratings.sqlite3"

    @property
    def learned_dir(self) -> Path:
        return self.data_dir / "learned"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"


def env_name(field_name: str) -> str:
    return f"BECOME_{field_name.upper()}"


def _parse(name: str, raw: str, default: object) -> object:
    try:
        if isinstance(default, bool):
            if raw.lower() not in {"1", "0", "true", "false", "yes", "no"}:
                raise ValueError
            return raw.lower() in {"1", "true", "yes"}
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path) or default is None:
            return Path(raw).expanduser()
    except ValueError:
        kind = type(default).__name__
        raise SettingsError(f"{name}={raw!r} is not a valid {kind}") from None
    return raw


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SettingsError(f"{name}={value!r} is not allowed: use one of {', '.join(allowed)}")


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise SettingsError(f"{name}={value} is out of range: use a value from {low} to {high}")
