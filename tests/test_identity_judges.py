"""A second identity judge: AuraFace (fal/AuraFace-v1) fetched into the insightface layout, both
judges on every output, side by side in the deck report with their distributions.

Offline: the Hub download is replaced by a tiny ONNX pack written under AuraFace's file names,
so the real fetch, load and measure code runs on it.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from pipelines.app.bootstrap import build_measurer, identity_judge
from pipelines.core.measures import NO_SECOND_JUDGE
from pipelines.faces.analysis import FaceAnalyzer, FaceModelsMissingError
from pipelines.faces.packs import HUB_PACKS, fetch_hub_pack
from pipelines.tiny.face import DET_FILE, REC_FILE, write_tiny_face_pack
from pipelines.weights import pin_for

AURAFACE = HUB_PACKS["auraface"]
AURA_REC, AURA_DET = "glintr100.onnx", "scrfd_10g_bnkps.onnx"


def write_tiny_auraface(folder: Path) -> Path:
    """A tiny detection + recognition pack laid out as fal/AuraFace-v1 ships it."""
    write_tiny_face_pack(folder, seed=11)
    (folder / REC_FILE).rename(folder / AURA_REC)
    (folder / DET_FILE).rename(folder / AURA_DET)
    return folder


@pytest.fixture
def fake_hub(monkeypatch):
    """snapshot_download writing the tiny AuraFace pack; records what was asked for."""
    calls: list[dict] = []

    def snapshot_download(repo_id, *, local_dir, allow_patterns=None, **kwargs):
        calls.append({"repo_id": repo_id, "allow_patterns": allow_patterns, **kwargs})
        write_tiny_auraface(Path(local_dir))
        return str(local_dir)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return calls


@pytest.fixture(scope="module")
def auraface_root(tmp_path_factory) -> Path:
    """An insightface root holding models/auraface, as the download leaves it."""
    root = tmp_path_factory.mktemp("face-root")
    write_tiny_auraface(root / "models" / "auraface")
    return root


@pytest.fixture(scope="module")
def selfie(portrait_path) -> Image.Image:
    return Image.open(portrait_path).convert("RGB")


def test_auraface_is_downloaded_into_the_insightface_layout_and_loads(tmp_path, fake_hub):
    # the tiny stand-in files are not AuraFace's: loaded only as unverified weights
    folder = fetch_hub_pack("auraface", tmp_path, allow_download=True, allow_unverified=True)
    assert folder == (tmp_path / "models" / "auraface").resolve()
    assert fake_hub[0]["repo_id"] == "fal/AuraFace-v1"
    assert fake_hub[0]["revision"] == pin_for("fal/AuraFace-v1").revision  # the pinned commit
    assert set(fake_hub[0]["allow_patterns"]) >= {AURA_REC, AURA_DET}
    assert "1k3d68.onnx" not in fake_hub[0]["allow_patterns"]  # not loaded: not fetched
    analyzer = FaceAnalyzer(folder, tmp_path, det_size=320)
    assert analyzer.recognizer_id == f"auraface/{AURA_REC}"
    # the repo id names the same pack; once on disk nothing is downloaded again
    again = fetch_hub_pack(AURAFACE.repo_id, tmp_path, allow_download=True, allow_unverified=True)
    assert again == folder
    assert len(fake_hub) == 1
    # without the opt-out, files that differ from their pins are refused, naming the file
    with pytest.raises(FaceModelsMissingError, match=r"glintr100\.onnx.*expected a7933ea5"):
        fetch_hub_pack("auraface", tmp_path, allow_download=True)


def test_auraface_offline_and_missing_says_where_to_put_it(tmp_path, fake_hub):
    with pytest.raises(FaceModelsMissingError, match="fal/AuraFace-v1") as err:
        fetch_hub_pack("auraface", tmp_path, allow_download=False)
    assert str(tmp_path / "models" / "auraface") in str(err.value)
    assert not fake_hub
    assert fetch_hub_pack("buffalo_l", tmp_path, allow_download=False) == "buffalo_l"


def test_auraface_setting_judges_and_the_face_pack_stays_beside_it(
    tiny_services, tiny_settings, auraface_root, selfie, group_path, monkeypatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the pack is on disk: no download is tried
    settings = replace(
        tiny_settings,
        identity_pack="auraface",
        face_root=auraface_root,
        unverified_weights=True,  # the tiny stand-in pack is not AuraFace's pinned files
    )
    judge = identity_judge(settings)
    assert judge is not None and judge.get().recognizer_id == f"auraface/{AURA_REC}"
    s = tiny_services
    measurer = build_measurer(settings, s.engine, s.clip, s.scorer)
    face = s.engine.face.get().analyze_loaded(selfie)
    other = Image.open(group_path).convert("RGB").crop((0, 0, 400, 400))
    outputs = _outputs(selfie, other)
    same, diff = measurer.measure(outputs, selfie, face, "x", s.catalog.get("anime"))
    assert same.identity.judge == f"auraface/{AURA_REC}"
    assert same.identity_face_pack.judge.endswith(REC_FILE)
    assert same.identity.value == pytest.approx(1.0, abs=1e-3)
    assert same.identity_face_pack.value == pytest.approx(1.0, abs=1e-3)
    # two different recognisers: the other person's cosines differ by judge
    assert diff.identity.value != pytest.approx(diff.identity_face_pack.value, abs=1e-3)
    alone = s.comparison.measurer.measure(outputs, selfie, face, "x", s.catalog.get("anime"))
    assert alone[1].identity.value == pytest.approx(diff.identity_face_pack.value, abs=1e-5)
    assert alone[0].identity_face_pack.reason == NO_SECOND_JUDGE


def _outputs(*images: Image.Image):
    from pipelines.core.results import MethodOutput

    return [
        MethodOutput(method=m, prompt="a portrait of a person", image=img)
        for m, img in zip(("raw", "template"), images, strict=False)
    ]


def test_deck_report_shows_both_judges_and_their_distribution(
    tiny_services, tiny_settings, auraface_root, portrait_path, tmp_path, monkeypatch
):
    from conftest import OneProcess

    from pipelines.app.service import ComparisonService
    from pipelines.core.recent import RecentComparisons
    from pipelines.decks.render import render_deck
    from pipelines.decks.report import build_report
    from pipelines.decks.spec import parse_spec

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = replace(
        tiny_settings,
        identity_pack="auraface",
        face_root=auraface_root,
        unverified_weights=True,  # the tiny stand-in pack is not AuraFace's pinned files
    )
    s = tiny_services
    service = ComparisonService(
        s.engine,
        s.catalog,
        s.registry,
        rated_targets=None,
        recent=RecentComparisons(capacity=0),
        scorer=s.scorer,
        measurer=build_measurer(settings, s.engine, s.clip, s.scorer),
    )
    (tmp_path / "selfies").mkdir()
    shutil.copy(portrait_path, tmp_path / "selfies" / "hanks.png")
    raw = {
        "deck": "judges",
        "selfies": "selfies",
        "styles": ["anime"],
        "methods": ["raw", "template"],
        "prompts": ["a portrait of a person"],
        "seeds": [1],
    }
    spec = parse_spec(raw, tmp_path / "deck.yaml", settings)
    out = tmp_path / "deck"
    render_deck(spec, out, settings, service.compare, state=OneProcess(), progress=False)
    report = build_report(out)
    md = report.markdown
    header = next(line for line in md.splitlines() if line.startswith("| style | method | outp"))
    assert "| identity | identity_face_pack |" in header  # side by side
    assert report.identity is not None
    assert report.identity.judges["identity"] == f"auraface/{AURA_REC}"
    assert report.identity.judges["identity_face_pack"].endswith(REC_FILE)
    assert "## Identity: each judge's distribution" in md
    assert f"by **auraface/{AURA_REC}**" in md
    spreads = {(x.method, x.measure) for x in report.identity.spreads}
    assert spreads == {
        (m, j) for m in ("raw", "template") for j in ("identity", "identity_face_pack")
    }
    for x in report.identity.spreads:
        assert x.low <= x.q1 <= x.median <= x.q3 <= x.high and 0 <= x.near_copy <= 1


def test_report_without_second_judge_has_no_face_pack_column(small_deck):
    from pipelines.decks.report import build_report

    md = build_report(small_deck).markdown
    header = next(line for line in md.splitlines() if line.startswith("| style | method | outp"))
    assert "identity_face_pack" not in md
    assert "| identity |" in header
    assert "`identity` by **" in md  # the one judge's distribution is still shown
