"""Engine choice (auto falls back to preview, and says why) and the preview renderer."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.app.engines import build_engine, missing_weights, resolve_engine
from pipelines.core.settings import Settings
from pipelines.preview.renderer import mentions_style
from pipelines.styles.catalog import load_catalog
from pipelines.tiny.face import write_tiny_face_pack


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def settings_for(tmp_path, **env) -> Settings:
    base = {"BECOME_DATA_DIR": str(tmp_path / "data"), "BECOME_FACE_ROOT": str(tmp_path / "if")}
    return Settings.from_env({**base, **env})


def test_auto_without_weights_falls_back_to_preview_naming_what_is_missing(tmp_path, offline):
    s = settings_for(tmp_path, BECOME_BASE_MODEL=str(tmp_path / "no-such-model"))
    choice = resolve_engine(s)
    assert choice.name == "preview" and choice.is_preview
    assert "BECOME_BASE_MODEL" in choice.reason and "buffalo_l" in choice.reason
    assert "not AI results" in choice.reason


def test_auto_with_local_weights_picks_diffusers(tmp_path, offline):
    model = tmp_path / "sd15"
    model.mkdir()
    (model / "model_index.json").write_text("{}")
    adapter = tmp_path / "faceid"
    adapter.mkdir()
    (adapter / "ip-adapter-faceid_sd15.bin").write_bytes(b"x")
    write_tiny_face_pack(tmp_path / "if" / "models" / "buffalo_l")
    s = settings_for(tmp_path, BECOME_BASE_MODEL=str(model), BECOME_FACEID_ADAPTER=str(adapter))
    assert missing_weights(s) == []
    assert resolve_engine(s).name == "diffusers"


@pytest.mark.parametrize("engine", ["tiny", "preview", "diffusers"])
def test_explicit_engine_is_honoured(tmp_path, offline, engine):
    assert resolve_engine(settings_for(tmp_path, BECOME_ENGINE=engine)).name == engine


def test_mentions_style():
    catalog = load_catalog()
    anime = catalog.get("anime")
    assert mentions_style(anime.apply("a person"), anime)
    assert mentions_style("an Anime girl, smiling", anime)
    assert not mentions_style("a portrait of a person, golden hour lighting", anime)


def test_preview_engine_renders_plain_and_styled_prompts_differently(tmp_path, offline, group_path):
    catalog = load_catalog()
    s = settings_for(tmp_path, BECOME_ENGINE="preview", BECOME_SIZE="128")
    engine = build_engine(s, catalog)
    assert engine.choice.is_preview and any("stand-in" in n for n in engine.notes)
    from pipelines.core.request import CompareRequest, no_progress
    from pipelines.faces.photo import load_image
    from pipelines.models.jobs import RenderJob

    img = load_image(group_path)
    face = engine.face.get().analyze(img)
    style = catalog.get("pop_art")
    prompts = ("a person", style.apply("a person"), style.apply("a person") + ", black and white")
    request = CompareRequest.from_settings(
        s, style="pop_art", prompt="a person", methods=["raw"], seed=3, ip_adapter_scale=0.8
    )
    job = RenderJob(request, prompts, ("", "", ""), face, img, style)
    out = engine.renderer.render(job, no_progress)
    a, b, c = (np.asarray(i, dtype=np.int16) for i in out.images)
    assert all(i.size == (128, 128) for i in out.images)
    assert np.abs(a - b).mean() > 5  # the style's recipe applies only when asked for
    assert np.abs(b - c).mean() > 5  # and a modifier changes it further
    assert np.array_equal(
        b, np.asarray(engine.renderer.render(job, no_progress).images[1], dtype=np.int16)
    )


# ----------------------------------------------------------------------------- model families


def test_auto_without_a_family_s_weights_falls_back_naming_family_and_setting(tmp_path, offline):
    s = settings_for(tmp_path, BECOME_MODEL_FAMILY="flux2-klein-edit")
    choice = resolve_engine(s)
    assert choice.is_preview
    assert "flux2-klein-edit base model black-forest-labs/FLUX.2-klein-4B" in choice.reason
    assert "BECOME_BASE_MODEL" in choice.reason and "FaceID" not in choice.reason


def test_auto_with_a_local_flux2_folder_needs_no_face_adapter(tmp_path, offline):
    model = tmp_path / "klein"
    model.mkdir()
    (model / "model_index.json").write_text("{}")
    write_tiny_face_pack(tmp_path / "if" / "models" / "buffalo_l")
    s = settings_for(tmp_path, BECOME_MODEL_FAMILY="flux2-klein-edit", BECOME_BASE_MODEL=str(model))
    assert missing_weights(s) == []
    choice = resolve_engine(s)
    assert choice.name == "diffusers" and "flux2-klein-edit" in choice.reason


def test_missing_weights_on_the_diffusers_engine_name_the_setting(tmp_path, offline):
    from pipelines.models.renderer import WeightsUnavailable

    s = settings_for(
        tmp_path,
        BECOME_ENGINE="diffusers",
        BECOME_MODEL_FAMILY="sdxl-faceid",
        BECOME_BASE_MODEL=str(tmp_path / "no-sdxl"),
        BECOME_SAFETY_CHECKER="off",
    )
    engine = build_engine(s, load_catalog())
    assert engine.family.id == "sdxl-faceid" and engine.renderer.model_ids["base"].endswith(
        "no-sdxl"
    )
    with pytest.raises(WeightsUnavailable, match="BECOME_BASE_MODEL") as err:
        _ = engine.renderer.pipeline
    assert "sdxl-faceid" in str(err.value) and "flux2-klein-edit" in str(err.value)


def test_a_faceid_weight_for_another_family_names_the_setting(tmp_path, offline, tiny_settings):
    from pipelines.models.sd15_faceid import AdapterMismatchError
    from pipelines.tiny.sd15_faceid import tiny_sd15_weights
    from pipelines.tiny.sdxl_faceid import tiny_sdxl_weights

    cache = tiny_settings.cache_dir / "tiny"
    _, sd15_adapter, sd15_weight = tiny_sd15_weights(cache)
    sdxl_base, _, _ = tiny_sdxl_weights(cache)
    s = settings_for(
        tmp_path,
        BECOME_ENGINE="diffusers",
        BECOME_MODEL_FAMILY="sdxl-faceid",
        BECOME_BASE_MODEL=str(sdxl_base),
        BECOME_FACEID_ADAPTER=str(sd15_adapter),
        BECOME_FACEID_WEIGHT=sd15_weight,
        BECOME_SAFETY_CHECKER="off",
        BECOME_DEVICE="cpu",
        BECOME_UNVERIFIED_WEIGHTS="1",  # the tiny folders are no pinned model's files
    )
    engine = build_engine(s, load_catalog())
    with pytest.raises(AdapterMismatchError, match="BECOME_FACEID_WEIGHT") as err:
        _ = engine.renderer.pipeline
    assert "sdxl-faceid" in str(err.value) and "'ip-adapter-faceid_sdxl.bin'" in str(err.value)


@pytest.mark.parametrize(
    ("family", "size", "allowed"),
    [
        ("sd15-faceid", 1536, "a multiple of 8 from 64 to 1024"),
        ("flux2-klein-edit", 1000, "a multiple of 16 from 64 to 2048"),
    ],
)
def test_a_size_the_family_cannot_render_names_the_value_and_allowed_sizes(family, size, allowed):
    from pipelines.core.request import CompareInputError, CompareRequest

    s = Settings.from_env({"BECOME_MODEL_FAMILY": family})
    with pytest.raises(CompareInputError, match=f"height={size}") as err:
        CompareRequest.from_settings(
            s, style="anime", prompt="a person", methods=["raw"], height=size
        )
    assert allowed in str(err.value)
    assert (
        CompareRequest.from_settings(s, style="anime", prompt="a", methods=["raw"]).height == s.size
    )
