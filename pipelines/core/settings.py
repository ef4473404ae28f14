"""Typed settings, read once from environment variables.

Every variable the app reads is declared here and listed in the README's settings table.
Invalid values fail at start with a :class:`SettingsError` naming the variable and what it allows.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from pipelines.core.errors import InputError
from pipelines.core.families import DEFAULT_FAMILY, FAMILIES, ModelFamily
from pipelines.core.limits import LIMITS
from pipelines.core.limits import MAX_SEED as MAX_SEED  # re-exported: the UI and requests read it
from pipelines.core.limits import Limit as Limit
from pipelines.core.measures import PREFERENCE_MODELS

ENGINES = ("auto", "diffusers", "tiny", "preview")
DEVICES = ("auto", "cuda", "mps", "cpu")
DTYPES = ("auto", "float32", "float16", "bfloat16")
INVERSION_MODES = ("fast", "pez")
SAFETY_CHOICES = ("auto", "on", "off")
MIN_SECRET_CHARS = 16
BROWSER_SECRET_FILE = "browser_secret"  # in data_dir, when BECOME_BROWSER_SECRET is unset
VOTER_KEY_FILE = "voter_key"  # in data_dir, when BECOME_VOTER_KEY is unset
DEFAULT_SAFETY_MODEL = "CompVis/stable-diffusion-safety-checker"

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ASSETS_DIR = PROJECT_ROOT / "assets"


class SettingsError(InputError):
    """An environment variable holds a value the app cannot use."""


@dataclass(frozen=True)
class Settings:
    """All runtime configuration. Field ``foo`` is read from ``BECOME_FOO``."""

    engine: str = "auto"
    model_family: str = DEFAULT_FAMILY  # see pipelines.core.families.FAMILIES
    # "" (or None below) = the model family's default, filled in when the settings are built
    base_model: str = ""
    faceid_adapter: str = ""
    faceid_weight: str = ""
    face_pack: str = "buffalo_l"
    face_root: Path = Path("~/.insightface").expanduser()
    face_det_size: int = 640
    # a second recogniser that judges identity, so the judge is not the conditioning model;
    # "" = the conditioning pack judges (the output's measures say which model judged)
    identity_pack: str = ""
    clip_model: str = "openai/clip-vit-large-patch14"
    # the human-preference measures to run, comma-separated ("" or "none": none); each loads
    # on first use, and an output says why one that is listed could not run
    preference_measures: str = ",".join(PREFERENCE_MODELS)
    pickscore_model: str = PREFERENCE_MODELS["pickscore"].model_id
    pickscore_processor: str = PREFERENCE_MODELS["pickscore"].processor_id
    hpsv2_model: str = PREFERENCE_MODELS["hpsv2"].model_id
    hpsv2_processor: str = PREFERENCE_MODELS["hpsv2"].processor_id
    inversion_mode: str = "fast"  # "fast" (rank the modifier banks) or "pez" (hard-prompt opt.)
    pez_steps: int = 300
    device: str = "auto"
    dtype: str = "auto"
    # request defaults, named as the request names them; env names kept (BECOME_STEPS, ...)
    # None until __post_init__ fills in the family's default ("kind" says how to parse them)
    num_inference_steps: int = field(
        default=None,  # type: ignore[assignment]
        metadata={"env": "BECOME_STEPS", "kind": int},
    )
    guidance_scale: float = field(
        default=None,  # type: ignore[assignment]
        metadata={"env": "BECOME_GUIDANCE", "kind": float},
    )
    size: int = field(default=None, metadata={"kind": int})  # type: ignore[assignment]
    batch_size: int = 0  # 0 = choose by device (see pipelines.models.runtime)
    safety_checker: str = "auto"  # auto = on when its weights are here (or downloadable)
    safety_model: str = DEFAULT_SAFETY_MODEL
    # load weights that are not pinned or differ from their pins (pipelines/weights/pins.py):
    # for one's own weights; the banner then says the files are unverified
    unverified_weights: bool = False
    compile: bool = False  # torch.compile the denoiser at start (CUDA; slow start, faster rows)
    channels_last: bool = True  # channels-last UNet/VAE on CUDA
    data_dir: Path = PROJECT_ROOT / "data"
    assets_dir: Path = ASSETS_DIR
    learned_model: Path | None = None  # None = data_dir/learned/current.npz, else the bundled one
    # the least data a retrain needs: rating rows, and of them held out to check a new model
    retrain_min_rows: int = 200
    retrain_min_held_out: int = 30
    feedback_repo: str = ""  # HF dataset repo id for syncing ratings; empty = local only
    feedback_token: str = field(default="", repr=False)
    staff_password: str = field(default="", repr=False)
    # encrypts what a browser keeps (its voter id, name, last row); "" = the secret generated
    # once in data_dir (see with_browser_secret), so a restart can still read what browsers keep.
    # Gradio hands it to every page: it keeps stored values readable, it guards nothing
    browser_secret: str = field(default="", repr=False)
    # signs the voter ids the server issues to pages, never sent to one; "" = the key generated
    # once in data_dir (see with_voter_key), so a restart still knows every browser's id
    voter_key: str = field(default="", repr=False)
    # proxies in front of the app whose X-Forwarded-For entries are trusted (one on a Space);
    # 0 = none: a caller's address is the connection's, and X-Forwarded-For is ignored
    trusted_proxies: int = 0
    # /rate calls (API and MCP) one address may make per minute; 0 = no limit. The page's votes
    # are not counted: a workshop's raters often share one address
    api_votes_per_minute: int = 30
    queue_concurrency: int = 1
    # requests of one kind (renders, votes, leaderboard reads, page loads, ...) that may wait in
    # the queue at once: each kind has its own line, so a flood of one never refuses another
    max_queue: int = 64
    # the app is also an MCP server (Gradio's): /compare, /rate and /leaderboard as tools
    mcp_server: bool = True

    def __post_init__(self) -> None:
        _check_choice("BECOME_ENGINE", self.engine, ENGINES)
        _check_choice("BECOME_MODEL_FAMILY", self.model_family, tuple(FAMILIES))
        self._fill_family_defaults()
        _check_choice("BECOME_DEVICE", self.device, DEVICES)
        _check_choice("BECOME_DTYPE", self.dtype, DTYPES)
        _check_choice("BECOME_INVERSION_MODE", self.inversion_mode, INVERSION_MODES)
        _check_choice("BECOME_SAFETY_CHECKER", self.safety_checker, SAFETY_CHOICES)
        _check_range("BECOME_PEZ_STEPS", self.pez_steps, 1, 5000)
        self.preference_list  # noqa: B018  # raises SettingsError on an unknown name
        limits = self.family.limits
        for name, var, value in (
            ("num_inference_steps", "BECOME_STEPS", self.num_inference_steps),
            ("guidance_scale", "BECOME_GUIDANCE", self.guidance_scale),
            ("height", "BECOME_SIZE", self.size),
        ):
            problem = limits[name].problem(var, value)
            if problem:
                raise SettingsError(f"{problem} (BECOME_MODEL_FAMILY={self.model_family})")
        _check_range("BECOME_FACE_DET_SIZE", self.face_det_size, 64, 2048)
        _check_range("BECOME_BATCH_SIZE", self.batch_size, 0, LIMITS["batch_size"].high)
        _check_range("BECOME_QUEUE_CONCURRENCY", self.queue_concurrency, 1, 256)
        _check_range("BECOME_MAX_QUEUE", self.max_queue, 1, 10_000)
        _check_range("BECOME_RETRAIN_MIN_HELD_OUT", self.retrain_min_held_out, 4, 1_000_000)
        _check_range(
            "BECOME_RETRAIN_MIN_ROWS", self.retrain_min_rows, self.retrain_min_held_out, 10_000_000
        )
        _check_range("BECOME_TRUSTED_PROXIES", self.trusted_proxies, 0, 10)
        _check_range("BECOME_API_VOTES_PER_MINUTE", self.api_votes_per_minute, 0, 100_000)
        for name, value in (
            ("BECOME_BROWSER_SECRET", self.browser_secret),
            ("BECOME_VOTER_KEY", self.voter_key),
        ):
            if value and len(value) < MIN_SECRET_CHARS:
                # the message never shows the secret: settings errors are logged
                raise SettingsError(
                    f"{name} has {len(value)} characters: use at least "
                    f"{MIN_SECRET_CHARS}, e.g. the output of: "
                    "python -c 'import secrets; print(secrets.token_hex(32))'"
                )
        if self.face_det_size % 32:
            raise SettingsError(
                f"BECOME_FACE_DET_SIZE={self.face_det_size} is not allowed: use a multiple of 32"
            )

    def _fill_family_defaults(self) -> None:
        """Unset generator values take the family's; a face adapter must fit the family."""
        family = self.family
        faceid = [f for f in FAMILIES.values() if f.uses_faceid]
        if not family.uses_faceid:
            for name in ("faceid_adapter", "faceid_weight"):
                if getattr(self, name):
                    raise SettingsError(
                        f"{env_name(name)}={getattr(self, name)!r} is not used by "
                        f"BECOME_MODEL_FAMILY={family.id} (it has no face adapter: it edits the "
                        "selfie): unset it, or use a FaceID family "
                        f"({', '.join(f.id for f in faceid)})"
                    )
        others = {f.faceid_weight: f.id for f in faceid if f.id != family.id}
        if self.faceid_weight in others:
            raise SettingsError(
                f"BECOME_FACEID_WEIGHT={self.faceid_weight!r} is the "
                f"{others[self.faceid_weight]} adapter and does not fit "
                f"BECOME_MODEL_FAMILY={family.id}: use {family.faceid_weight!r} (or unset it)"
            )
        for name, value in _family_defaults(family).items():
            if getattr(self, name) in ("", None):
                object.__setattr__(self, name, value)  # frozen: set once, before anyone reads it

    @property
    def family(self) -> ModelFamily:
        """The model family ``BECOME_MODEL_FAMILY`` names."""
        return FAMILIES[self.model_family]

    def with_family(self, family_id: str) -> Settings:
        """These settings for another family: values that were this family's defaults become
        the other's (``dataclasses.replace`` alone would keep them)."""
        unset = {
            name: "" if isinstance(value, str) else None
            for name, value in _family_defaults(self.family).items()
            if getattr(self, name) == value
        }
        return replace(self, model_family=family_id, **unset)

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
            default = cls.__dataclass_fields__[f.name].default
            values[f.name] = _parse(name, raw.strip(), default, f.metadata.get("kind"))
        return cls(**values)  # type: ignore[arg-type]

    def with_browser_secret(self) -> Settings:
        """These settings with ``browser_secret`` filled: ``BECOME_BROWSER_SECRET`` when set,
        else the secret kept in ``data_dir/browser_secret`` (generated on the first start, owner
        read/write only), so every restart reads what browsers stored before it."""
        if self.browser_secret:
            return self
        return replace(self, browser_secret=_kept_secret(self.data_dir / BROWSER_SECRET_FILE))

    def with_voter_key(self) -> Settings:
        """These settings with ``voter_key`` filled: ``BECOME_VOTER_KEY`` when set, else the key
        kept in ``data_dir/voter_key`` (generated on the first start, owner read/write only), so
        the ids issued before a restart still verify after it."""
        if self.voter_key:
            return self
        return replace(self, voter_key=_kept_secret(self.data_dir / VOTER_KEY_FILE))

    @property
    def preference_list(self) -> tuple[str, ...]:
        """The preference measures ``BECOME_PREFERENCE_MEASURES`` turns on, in its order."""
        raw = self.preference_measures.strip().lower()
        if raw in ("", "none", "off"):
            return ()
        names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
        for name in names:
            _check_choice("BECOME_PREFERENCE_MEASURES", name, (*PREFERENCE_MODELS, "none"))
        return names

    def preference_source(self, name: str) -> tuple[str, str]:
        """(model, processor) the preference measure ``name`` loads: its two settings."""
        if name not in PREFERENCE_MODELS:
            raise SettingsError(
                f"unknown preference measure {name!r}: use one of {', '.join(PREFERENCE_MODELS)}"
            )
        return getattr(self, f"{name}_model"), getattr(self, f"{name}_processor")

    @property
    def ratings_db(self) -> Path:
        """The SQLite ratings database."""
        return self.data_dir / "ratings.sqlite3"

    @property
    def learned_dir(self) -> Path:
        """Where retrained learned models are saved."""
        return self.data_dir / "learned"

    @property
    def recent_dir(self) -> Path:
        """What rating a recent row needs (no image, no selfie), kept a day across restarts."""
        return self.data_dir / "recent"

    @property
    def cache_dir(self) -> Path:
        """Caches: tiny models, stand-in face models, inversion results."""
        return self.data_dir / "cache"


def _kept_secret(path: Path) -> str:
    """The secret in ``path``, written there first if the file is missing (or empty).

    Written to a temporary file and linked into place, which fails if another process got
    there first: then both use the one that won, never two secrets."""
    try:
        kept = path.read_text("utf-8").strip()
    except FileNotFoundError:
        kept = ""
    if len(kept) >= MIN_SECRET_CHARS:
        return kept
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secrets.token_hex(32))
    try:
        if kept:  # a file too short to be ours (e.g. truncated): replaced
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    except FileExistsError:
        pass  # another process wrote it first: use theirs
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text("utf-8").strip()


def _family_defaults(family: ModelFamily) -> dict[str, object]:
    """The settings a model family fills in when they are unset."""
    return {
        "base_model": family.base_model,
        "faceid_adapter": family.faceid_adapter or "",
        "faceid_weight": family.faceid_weight or "",
        "num_inference_steps": family.num_inference_steps,
        "guidance_scale": family.guidance_scale,
        "size": family.size,
    }


def env_name(field_name: str) -> str:
    """The environment variable a settings field is read from: ``foo`` -> ``BECOME_FOO``."""
    return f"BECOME_{field_name.upper()}"


def _parse(name: str, raw: str, default: object, kind: type | None = None) -> object:
    if kind is not None:  # the field's type when its default (None) cannot say it
        default = kind()
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
