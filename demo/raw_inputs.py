"""Inputs whose values reach the app as sent: the app, not Gradio, decodes and validates them.

Images: an image input that hands the app the uploaded file as it is, Gradio decodes nothing.

``gr.Image`` opens every upload with Pillow, converts it to its ``image_mode`` and saves
converted copies in its cache before the app sees it. A zero-byte file, a PDF named .jpg or a
decompression bomb then fails inside Gradio with a generic error (or costs gigabytes), 16-bit
and transparent photos are converted badly, and the converted copies escape the cache's
10-minute deletion. :func:`raw_image` keeps the component (upload, webcam, clipboard, preview)
and hands over the cached upload's path untouched;
``pipelines.faces.photo.load_image`` decodes it with its checks and plain messages.

Numbers: ``gr.Number`` rounds what it receives, so a seed sent as ``"abc"`` (or ``"42"``) over
the API fails in Gradio with a ``TypeError``; :func:`raw_number` passes it on and
``CompareRequest`` accepts ``"42"`` and refuses ``"abc"`` with a message naming the field.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote_to_bytes

import gradio as gr
from gradio.components.imageslider import SliderData
from gradio.data_classes import ImageData
from PIL import Image

from demo.gradio_internals import component_subclass
from demo.transient import inline_image

BAD_DATA_URL = "The image could not be read: upload a photo (JPEG, PNG or WebP)."


def raw_image(**kwargs: Any) -> gr.Image:
    """A ``gr.Image`` (upload, webcam, clipboard, preview) whose value reaches the function as
    the uploaded file's path (or a pasted image's bytes), never decoded by Gradio.

    A class, not an instance attribute: Gradio rebuilds a component from its class when an event
    updates it (an example photo clicked), and a replaced instance ``preprocess`` was then lost,
    so every later upload went through Gradio's decoder. The class is still named ``Image``, so
    the page draws it with Gradio's image frontend.
    """
    return RawImage(type="filepath", image_mode=None, **kwargs)  # "filepath": what the API says


def raw_preprocess(payload: ImageData | None) -> str | bytes | None:
    """The cached upload's path, untouched; a ``data:`` URL's bytes, undecoded."""
    if payload is None:
        return None
    if payload.url and payload.url.startswith("data:"):
        return data_url_bytes(payload.url)
    if payload.path is None:
        raise gr.Error(BAD_DATA_URL)
    return str(payload.path)


def data_url_bytes(url: str) -> bytes:
    """The bytes of a base64 ``data:`` URL (a pasted or captured image), without decoding pixels."""
    header, _, data = url.partition(",")
    if not header.endswith(";base64"):
        return unquote_to_bytes(data)
    try:
        return base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        raise gr.Error(BAD_DATA_URL) from None


def inline_postprocess(component: gr.Image, value: Any) -> ImageData | None:
    """A decoded photo goes to the page inline (no file in Gradio's cache); an example's path
    (a file Gradio keeps for every page) as Gradio serves it."""
    if value is None or isinstance(value, ImageData):
        return value
    if isinstance(value, Image.Image):
        return inline_image(value)
    return gr.Image.postprocess(component, value)


def slider_postprocess(component: gr.ImageSlider, value: Any) -> SliderData | None:
    """(face crop, output): the face crop inline, the output as Gradio serves it."""
    if value is None:
        return None
    face, out = value
    served = gr.ImageSlider.postprocess(component, (None, out))
    return SliderData(root=(inline_postprocess(component, face), served.root[1]))


RawImage = component_subclass(
    gr.Image,
    "Image",
    {
        "preprocess": lambda self, payload: raw_preprocess(payload),
        "postprocess": inline_postprocess,
    },
    __name__,
)
FaceSlider = component_subclass(
    gr.ImageSlider, "ImageSlider", {"postprocess": slider_postprocess}, __name__
)


def inline_image_output(**kwargs: Any) -> gr.Image:
    """A ``gr.Image`` output whose decoded photos (a face crop) reach the page inline, never
    through a file in Gradio's cache."""
    return RawImage(type="pil", **kwargs)


def face_slider(**kwargs: Any) -> gr.ImageSlider:
    """A ``gr.ImageSlider`` of (face crop, output) whose face crop reaches the page inline."""
    return FaceSlider(**kwargs)


def raw_number(**kwargs: Any) -> gr.Number:
    """A ``gr.Number`` whose value reaches the function as sent (the request validates it)."""
    number = gr.Number(**kwargs)
    number.preprocess = _as_sent  # type: ignore[method-assign]
    return number


def _as_sent(payload: Any) -> Any:
    return payload


def offered_preprocess(component: gr.CheckboxGroup, payload: list[Any] | None) -> list[Any]:
    """The ticked values the component offers now; one it no longer offers is dropped, not an
    error (see :func:`offered_choices`)."""
    offered = {value for _, value in component.choices}
    return [v for v in payload or [] if v in offered]


OfferedChoices = component_subclass(
    gr.CheckboxGroup, "CheckboxGroup", {"preprocess": offered_preprocess}, __name__
)


def offered_choices(**kwargs: Any) -> gr.CheckboxGroup:
    """A ``gr.CheckboxGroup`` that passes on only the ticked values it offers now.

    A page narrows its choices after it opens (a session's methods, those that can run here);
    a click sent between the server's update and the browser applying it still carried an old
    tick, and Gradio refused the whole click ("Value: 'learned' is not in the list of
    choices"). The request is checked again by the service either way."""
    return OfferedChoices(**kwargs)
