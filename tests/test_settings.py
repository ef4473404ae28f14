from pathlib import Path

import pytest

from pipelines.settings import Settings, SettingsError


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
