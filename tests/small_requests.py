"""Small requests per model type: the real pipelines at reduced steps and sizes, for fast tests."""

SMALL = {
    "RealisticVision": {"steps": 6, "width": 256, "height": 256},
    "DreamShaper": {"steps": 6, "width": 256, "height": 320},
    "AnimeV3": {"steps": 5, "width": 512, "height": 512},
    "RealitiesEdgeXL": {"steps": 4, "width": 512, "height": 512},
    "TextToVideo": {"steps": 5, "width": 64, "height": 64, "num_frames": 6},
}


def small_request(model: str, seed: int = 1234, **params) -> dict:
    return {"model": model, "prompt": "a red fox in a snowy forest, cinematic", "seed": seed,
            "params": {**SMALL[model], **params}}
