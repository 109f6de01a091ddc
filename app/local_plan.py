"""The local network's numbers (`seedgrid up`), in one place: tests, benches and the
verification calibration import them, so what is measured is what the local network sends.
"""

from __future__ import annotations

# SPEC.md's tier table scaled down so that promotion and relegation show within a few
# epochs of a local run; every view says it is scaled.
LOCAL_TIERS = [
    {"name": "Bronze", "request_success": 0.0, "validation_success": 0.0, "min_successes": 0,
     "reward_factor": 0.45, "request_limit": 500},
    {"name": "Silver", "request_success": 0.949, "validation_success": 0.949, "min_successes": 3,
     "reward_factor": 0.55, "request_limit": 500},
    {"name": "Gold", "request_success": 0.949, "validation_success": 0.949, "min_successes": 8,
     "reward_factor": 0.72, "request_limit": 500},
    {"name": "Grandmaster", "request_success": 0.999, "validation_success": 0.999, "min_successes": 20,
     "reward_factor": 0.85, "request_limit": 500},
    {"name": "Challenger", "request_success": 0.999, "validation_success": 0.999, "min_successes": 40,
     "reward_factor": 1.0, "request_limit": 500},
]
# Small challenges: the local network runs the dev checkpoints on CPU.
LOCAL_CHALLENGES = {
    "RealisticVision": {"steps": 4, "width": 512, "height": 512},
    "DreamShaper": {"steps": 4, "width": 512, "height": 512},
    "AnimeV3": {"steps": 4, "width": 512, "height": 512},
    "RealitiesEdgeXL": {"steps": 3, "width": 512, "height": 512},
    "TextToVideo": {"steps": 4, "width": 64, "height": 64, "num_frames": 8},
}
