"""OpenAI's image calls read into job bodies (app/gateway/openai_images.py), from the multipart body the
openai package itself builds; the routes over real processes are in test_gateway.py."""

import asyncio
import base64

import httpx
import pytest
from starlette.datastructures import Headers
from starlette.formparsers import MultiPartParser

from app.gateway.openai_images import MAX_N, edit_jobs, generation_jobs, openai_field
from app.protocol.errors import InvalidRequest

PICTURE = b"\x89PNG not really, the protocol checks the picture later"


def form(data=None, files=None):
    """The form a server reads from what httpx (the openai package's transport) sends."""
    request = httpx.Request("POST", "http://gateway/v1/images/edits", data=data or {}, files=files or {})
    body = request.read()

    async def once():
        yield body

    return asyncio.run(MultiPartParser(Headers(dict(request.headers)), once()).parse())


def test_an_edit_is_an_img2img_job_with_the_upload_as_its_init_image():
    bodies, fmt = edit_jobs(form({"prompt": "a lighthouse", "model": "RealisticVision", "n": "2", "size": "256x256",
                                  "strength": "0.6", "seed": "7", "quality": "high", "response_format": "url"},
                                 {"image": ("start.png", PICTURE, "image/png")}))
    assert fmt == "url" and len(bodies) == 2 and bodies[0] == bodies[1]
    assert bodies[0] == {"model": "RealisticVision", "prompt": "a lighthouse", "pipeline": "img2img",
                         "init_image": base64.b64encode(PICTURE).decode(), "params": {"width": 256, "height": 256},
                         "strength": 0.6, "seed": 7}
    one, fmt = edit_jobs(form({"prompt": "x"}, {"image[]": ("a.png", PICTURE, "image/png")}))  # the SDK's list form
    assert fmt == "b64_json" and len(one) == 1 and "strength" not in one[0] and one[0]["model"]


@pytest.mark.parametrize("data, files, field", [
    ({"prompt": "x"}, {"other": ("o.bin", b"o")}, "image"),
    ({"prompt": "x", "image": "text, not a file"}, {"other": ("o.bin", b"o")}, "image"),
    ({"prompt": "x"}, [("image[]", ("a.png", PICTURE)), ("image[]", ("b.png", PICTURE))], "image"),
    ({"prompt": " "}, {"image": ("a.png", PICTURE)}, "prompt"),
    ({"prompt": "x"}, {"image": ("a.png", PICTURE), "mask": ("m.png", PICTURE)}, "mask"),
    ({"prompt": "x"}, {"image": ("a.png", PICTURE), "markup": ("m.svg", b"<svg/>")}, "markup"),
    ({"prompt": "x", "stream": "true"}, {"image": ("a.png", PICTURE)}, "stream"),
    ({"prompt": "x", "n": "0"}, {"image": ("a.png", PICTURE)}, "n"),
    ({"prompt": "x", "n": "two"}, {"image": ("a.png", PICTURE)}, "n"),
    ({"prompt": "x", "n": str(MAX_N + 1)}, {"image": ("a.png", PICTURE)}, "n"),
    ({"prompt": "x", "strength": "lots"}, {"image": ("a.png", PICTURE)}, "strength"),
    ({"prompt": "x", "seed": "1.5"}, {"image": ("a.png", PICTURE)}, "seed"),
    ({"prompt": "x", "size": "big"}, {"image": ("a.png", PICTURE)}, "size"),
    ({"prompt": "x", "response_format": "gif"}, {"image": ("a.png", PICTURE)}, "response_format"),
    ({}, {"image": ("a.png", PICTURE), "prompt": ("p.txt", b"x")}, "prompt"),
])
def test_what_an_edit_cannot_be_is_named(data, files, field):
    with pytest.raises(InvalidRequest) as refused:
        edit_jobs(form(data, files))
    assert refused.value.field == field, refused.value


def test_generations_read_as_before():
    bodies, fmt = generation_jobs({"prompt": "a red circle", "model": "RealisticVision", "n": 3, "size": "auto"})
    assert fmt == "b64_json" and bodies == [{"model": "RealisticVision", "prompt": "a red circle", "params": {}}] * 3
    for raw, field in (([], "body"), ({"prompt": ""}, "prompt"), ({"prompt": "x", "n": True}, "n"),
                       ({"prompt": "x", "size": "1x"}, "size"), ({"prompt": "x", "response_format": 1}, "response_format")):
        with pytest.raises(InvalidRequest) as refused:
            generation_jobs(raw)
        assert refused.value.field == field
    assert openai_field("init_image") == "image" and openai_field("params.width") == "params.width"
