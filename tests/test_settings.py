from pathlib import Path

import pytest

from pipelines.core.settings import Settings, SettingsError


def test_defaults_without_env():
    s = Settings.from_env({})
    assert s.engine == "auto"
    assert s.size == 512
    assert s.ratings_db == s.data_dir / "ratings.sqlite3"


def test_values_are_parsed_to_their_types():
    s = Settings.from_env(
        {
            "BECOME_ENGINE": "tiny",
            "BECOME_STEPS": "4",
            "BECOME_GUIDANCE": "3.5",
            "BECOME_DATA_DIR": "/tmp/x",
            "BECOME_LEARNED_MODEL": "/tmp/m.json",
        }
    )
    assert (s.engine, s.num_inference_steps, s.guidance_scale) == ("tiny", 4, 3.5)
    assert s.data_dir == Path("/tmp/x")
    assert s.learned_model == Path("/tmp/m.json")


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"BECOME_ENGINE": "gpu"}, ["BECOME_ENGINE", "auto, diffusers, tiny, preview"]),
        ({"BECOME_DEVICE": "tpu"}, ["BECOME_DEVICE", "cuda"]),
        ({"BECOME_DTYPE": "int8"}, ["BECOME_DTYPE", "float16"]),
        ({"BECOME_STEPS": "many"}, ["BECOME_STEPS", "int"]),
        ({"BECOME_STEPS": "0"}, ["BECOME_STEPS", "out of range"]),
        ({"BECOME_SIZE": "500"}, ["BECOME_SIZE", "multiple of 8"]),
        ({"BECOME_GUIDANCE": "nan?"}, ["BECOME_GUIDANCE", "float"]),
    ],
)
def test_invalid_values_name_the_variable_and_the_allowed_values(env, words):
    with pytest.raises(SettingsError) as err:
        Settings.from_env(env)
    for w in words:
        assert w in str(err.value)


def test_blank_values_keep_defaults():
    assert Settings.from_env({"BECOME_ENGINE": "  "}).engine == "auto"


SD15_WEIGHT = "ip-adapter-faceid_sd15.bin"


@pytest.mark.parametrize(
    ("family", "size", "steps", "guidance", "base", "weight"),
    [
        (
            "sd15-faceid",
            512,
            30,
            6.0,
            "stable-diffusion-v1-5/stable-diffusion-v1-5",
            "ip-adapter-faceid_sd15.bin",
        ),
        (
            "sdxl-faceid",
            1024,
            30,
            5.0,
            "stabilityai/stable-diffusion-xl-base-1.0",
            "ip-adapter-faceid_sdxl.bin",
        ),
        ("flux2-klein-edit", 1024, 4, 1.0, "black-forest-labs/FLUX.2-klein-4B", ""),
    ],
)
def test_each_family_fills_in_its_defaults(family, size, steps, guidance, base, weight):
    s = Settings.from_env({"BECOME_MODEL_FAMILY": family})
    assert (s.size, s.num_inference_steps, s.guidance_scale) == (size, steps, guidance)
    assert (s.base_model, s.faceid_weight) == (base, weight)
    assert s.family.id == family
    # values that are set win over the family's
    s = Settings.from_env(
        {"BECOME_MODEL_FAMILY": family, "BECOME_SIZE": "256", "BECOME_STEPS": "8"}
    )
    assert (s.size, s.num_inference_steps) == (256, 8)


def test_with_family_moves_the_family_defaults_and_keeps_what_was_set():
    s = Settings.from_env({"BECOME_SIZE": "64", "BECOME_BASE_MODEL": "/models/sd15"})
    x = s.with_family("sdxl-faceid")
    assert (x.size, x.base_model, x.faceid_weight) == (
        64,
        "/models/sd15",
        "ip-adapter-faceid_sdxl.bin",
    )
    assert (x.num_inference_steps, x.guidance_scale) == (30, 5.0)


@pytest.mark.parametrize(
    ("env", "words"),
    [
        (
            {"BECOME_MODEL_FAMILY": "sd3"},
            ["BECOME_MODEL_FAMILY", "sd15-faceid, sdxl-faceid, flux2-klein-edit"],
        ),
        ({"BECOME_SAFETY_CHECKER": "maybe"}, ["BECOME_SAFETY_CHECKER", "auto, on, off"]),
        ({"BECOME_COMPILE": "sometimes"}, ["BECOME_COMPILE", "bool"]),
        ({"BECOME_SIZE": "1536"}, ["BECOME_SIZE", "from 64 to 1024", "sd15-faceid"]),
        (
            {"BECOME_MODEL_FAMILY": "flux2-klein-edit", "BECOME_SIZE": "1000"},
            ["BECOME_SIZE", "multiple of 16", "flux2-klein-edit"],
        ),
        (
            {"BECOME_MODEL_FAMILY": "sdxl-faceid", "BECOME_FACEID_WEIGHT": SD15_WEIGHT},
            ["BECOME_FACEID_WEIGHT", "sd15-faceid adapter", "'ip-adapter-faceid_sdxl.bin'"],
        ),
        (
            {"BECOME_MODEL_FAMILY": "flux2-klein-edit", "BECOME_FACEID_WEIGHT": "x.bin"},
            ["BECOME_FACEID_WEIGHT", "no face adapter", "sd15-faceid, sdxl-faceid"],
        ),
    ],
)
def test_bad_family_settings_name_the_variable_and_the_allowed_values(env, words):
    with pytest.raises(SettingsError) as err:
        Settings.from_env(env)
    for w in words:
        assert w in str(err.value)


def test_sdxl_and_flux2_allow_sizes_sd15_cannot_render():
    assert Settings.from_env({"BECOME_MODEL_FAMILY": "sdxl-faceid", "BECOME_SIZE": "1536"}).size
    flux = Settings.from_env({"BECOME_MODEL_FAMILY": "flux2-klein-edit", "BECOME_SIZE": "2048"})
    assert flux.size == 2048


def test_readme_lists_every_setting_and_the_family_table():
    from dataclasses import fields

    from pipelines.core.families import markdown_table
    from pipelines.core.settings import PROJECT_ROOT, env_name

    readme = (PROJECT_ROOT / "README.md").read_text("utf-8")
    for f in fields(Settings):
        assert f"`{f.metadata.get('env', env_name(f.name))}`" in readme, f.name
    assert markdown_table() in readme  # the README's table is the families table
