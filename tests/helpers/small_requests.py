"""Small requests per model type: the local network's challenge params (app/local_plan.py), so
tests exercise exactly what `seedgrid up` sends."""

from app.local_plan import LOCAL_CHALLENGES

SMALL = LOCAL_CHALLENGES


def small_request(model: str, seed: int = 1234, **params) -> dict:
    return {"model": model, "prompt": "a red fox in a snowy forest, cinematic", "seed": seed,
            "params": {**SMALL[model], **params}}
