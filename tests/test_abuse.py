"""Hostile input over gradio_client against the app on the tiny engine: plain messages, no
endpoint beyond the documented three, and the app keeps serving."""

from __future__ import annotations

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from uploads import BAD, encode, gray16_png, rgba_png, write_all

DOCUMENTED = {"/compare", "/rate", "/leaderboard"}


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    return write_all(tmp_path_factory.mktemp("bad-uploads"))


def compare(client: Client, path, seed=1, methods=("raw",)):
    return client.predict(
        handle_file(str(path)), "anime", "a person", list(methods), seed, api_name="/compare"
    )


def test_the_api_is_exactly_the_documented_endpoints(client, app_url):
    for all_endpoints in (False, True):  # True also lists "undocumented" (callable) events
        api = client.view_api(all_endpoints=all_endpoints, print_info=False, return_format="dict")
        assert set(api["named_endpoints"]) == DOCUMENTED
        assert api["unnamed_endpoints"] == {}
    config = httpx.get(app_url.rstrip("/") + "/config", timeout=60).json()
    public = {d["api_name"] for d in config["dependencies"] if d["api_visibility"] != "private"}
    assert public == {name.strip("/") for name in DOCUMENTED}
    with pytest.raises(ValueError, match="lambda"):
        client.predict(api_name="/lambda")  # was: the learned model's metadata, no password


@pytest.mark.parametrize("case", list(BAD))
def test_bad_uploads_get_a_plain_message(client, bad_files, case):
    _, _, words = BAD[case]
    with pytest.raises(AppError, match=words) as info:
        compare(client, bad_files[case])
    assert "upstream" not in str(info.value) and "Traceback" not in str(info.value)


def test_awkward_photos_are_decoded_by_the_app(client, portrait_path, tmp_path):
    """16-bit greyscale (Gradio's own decoding turned it white: "no face found"), RGBA, GIF,
    CMYK and greyscale all reach the face step as the photo they are."""
    grey = Image.open(portrait_path).convert("L")
    files = {
        "grey16.png": gray16_png(portrait_path),
        "rgba.png": rgba_png(portrait_path),
        "anim.gif": encode(grey.convert("P"), "GIF"),
        "cmyk.jpg": encode(grey.convert("CMYK"), "JPEG"),
        "grey.png": encode(grey, "PNG"),
    }
    for name, data in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        images, meta = compare(client, path)
        assert len(images) == 1, name
        # the tiny engine's face models are stand-ins: the API claims no detection
        assert meta["face_detector"] == "stand-in" and meta["faces_found"] is None, name


def test_the_app_keeps_serving_after_hostile_uploads(client, bad_files, portrait_path):
    for path in bad_files.values():
        with pytest.raises(AppError):
            compare(client, path)
    images, meta = compare(client, portrait_path, seed=5)
    assert meta["seed"] == 5 and images


def test_a_seed_sent_as_text(client, portrait_path):
    with pytest.raises(AppError, match=r"seed='abc' is not a whole number"):
        compare(client, portrait_path, seed="abc")
    _, meta = compare(client, portrait_path, seed="42")
    assert meta["seed"] == 42


def test_user_text_in_error_messages_is_not_html(client, portrait_path):
    with pytest.raises(AppError, match="&lt;img src=x&gt;") as info:
        compare(client, portrait_path, methods=["<img src=x>"])
    assert "<img" not in str(info.value)


@pytest.mark.parametrize(
    ("value", "shown"), [(3.5, "3.5"), (True, "True"), ("five", "'five'"), (0, "0"), (6, "6")]
)
def test_rate_refuses_what_is_not_a_whole_1_to_5(client, portrait_path, value, shown):
    _, meta = compare(client, portrait_path, methods=("raw", "template"))
    cid = meta["comparison_id"]
    with pytest.raises(AppError, match=rf"rating for 'template' is {shown}"):
        client.predict(cid, {"raw": 4, "template": value}, "abuser", api_name="/rate")
    saved = client.predict(cid, {"raw": "4", "template": 2}, "radio-user", api_name="/rate")
    assert saved["saved"] == 2


def test_rate_refuses_ratings_that_are_not_a_mapping(client, portrait_path):
    _, meta = compare(client, portrait_path)
    with pytest.raises(AppError, match="map each method to 1-5"):
        client.predict(meta["comparison_id"], [4], "x", api_name="/rate")
