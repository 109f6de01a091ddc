"""Small requests per model type: the local network's challenge params (app/local_plan.py), so
tests exercise exactly what `seedgrid up` sends."""

from app.local_plan import LOCAL_CHALLENGES

SMALL = LOCAL_CHALLENGES


def small_request(model: str, seed: int = 1234, **params) -> dict:
    return {"model": model, "prompt": "a red fox in a snowy forest, cinematic", "seed": seed,
            "params": {**SMALL[model], **params}}


def noise_image(width: int = 256, height: int = 256, seed: int = 0) -> str:
    """A conditioning image as a request carries it (base64 PNG) that does not compress: about
    width x height x 4 bytes of text, so it takes a request past the text-only body cap."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()
