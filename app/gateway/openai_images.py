"""OpenAI's Images API over the gateway's jobs: what a call asks for, as job bodies.

- POST /v1/images/generations (JSON): prompt, model, n, size, response_format -> text-to-image jobs.
- POST /v1/images/edits (multipart/form-data, as `client.images.edit` sends it): image, prompt,
  model, n, size, response_format -> img2img jobs, the uploaded image as the init image. Two
  fields of ours ride along as form fields (the SDK's `extra_body`): strength (how much of the
  image is noised away, 0.75 by default) and seed. A mask (inpainting), several images,
  `markup` and streaming are refused with the field named; OpenAI's other fields (quality,
  background, user, ...) are ignored, as on the generations route.

Each job is then the same as a POST /v1/jobs body: the protocol's own parse_request checks it
(a 400 names the field, the init image's as `image`).
"""

from __future__ import annotations

import base64

from app.backends.registry import SERVED_MODELS
from app.protocol.catalogue import Pipeline, get_spec
from app.protocol.errors import InvalidRequest

MAX_N = 4
RESPONSE_FORMATS = ("b64_json", "url")
EDIT_MAX_FIELDS = 40  # OpenAI's form has about 20; more is not a client of it
REFUSED_EDIT_FILES = {"mask": "inpainting with a mask is not served; send the image alone (img2img)",
                      "markup": "markup is not served; send the image alone (img2img)"}


def generation_jobs(raw) -> tuple[list[dict], str]:
    """/v1/images/generations' JSON -> (n job bodies, response_format)."""
    if not isinstance(raw, dict):
        raise InvalidRequest("body", "must be a JSON object with prompt and model")
    model = raw.get("model")
    if model is None:
        model = next(m for m in SERVED_MODELS if not get_spec(m).is_video)
    return _bodies({"model": model, "prompt": _prompt(raw.get("prompt")), "params": _size(raw.get("size"))},
                   raw.get("n", 1)), _format(raw.get("response_format"))


def edit_jobs(form) -> tuple[list[dict], str]:
    """/v1/images/edits' form (Starlette's FormData) -> (n img2img job bodies, response_format)."""
    for name, why in REFUSED_EDIT_FILES.items():
        if name in form:
            raise InvalidRequest(name, why)
    if _text(form, "stream") in ("true", "True", "1"):
        raise InvalidRequest("stream", "streamed partial images are not served; leave stream out")
    images = form.getlist("image") + form.getlist("image[]")
    if not images:
        raise InvalidRequest("image", "is required: the image to start from, a PNG, JPEG or WebP file")
    if len(images) > 1:
        raise InvalidRequest("image", f"one image only (got {len(images)}); img2img starts from one picture")
    image = images[0]
    if isinstance(image, str):
        raise InvalidRequest("image", "must be a file part (multipart/form-data with a filename), not a text field")
    model = _text(form, "model") or next(m for m in SERVED_MODELS if Pipeline.IMAGE_TO_IMAGE in get_spec(m).pipelines)
    body: dict = {"model": model, "prompt": _prompt(_text(form, "prompt")), "pipeline": Pipeline.IMAGE_TO_IMAGE.value,
                  "init_image": base64.b64encode(image.file.read()).decode(), "params": _size(_text(form, "size"))}
    for name, kind in (("strength", float), ("seed", int)):
        value = _text(form, name)
        if value is not None:
            try:
                body[name] = kind(value)
            except ValueError:
                raise InvalidRequest(name, f"must be {'a number' if kind is float else 'an integer'}, "
                                           f"got {value[:40]!r}") from None
    n = _text(form, "n")
    if n is not None and not n.isdigit():
        raise InvalidRequest("n", f"must be an integer from 1 to {MAX_N}, got {n[:40]!r}")
    return _bodies(body, int(n) if n is not None else 1), _format(_text(form, "response_format"))


def openai_field(field: str) -> str:
    """A job field's name as an edit call knows it: the init image is its `image`."""
    return "image" if field == "init_image" else field


def _text(form, name: str) -> str | None:
    value = form.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(name, "must be a text field, not a file")
    return value


def _prompt(prompt) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequest("prompt", "is required: the text to draw")
    return prompt


def _bodies(body: dict, n) -> list[dict]:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_N:
        raise InvalidRequest("n", f"must be an integer from 1 to {MAX_N}")
    return [dict(body) for _ in range(n)]


def _format(fmt) -> str:
    fmt = "b64_json" if fmt is None else fmt
    if fmt not in RESPONSE_FORMATS:
        raise InvalidRequest("response_format", f"must be b64_json or url, got {str(fmt)[:40]!r}")
    return fmt


def _size(size) -> dict:
    if size in (None, "auto"):
        return {}
    w, sep, h = str(size).partition("x")
    if not (sep and w.isdigit() and h.isdigit()):
        raise InvalidRequest("size", f"must be WIDTHxHEIGHT (512x512), got {str(size)[:40]!r}")
    return {"width": int(w), "height": int(h)}
