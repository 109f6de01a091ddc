"""The artifact store's cost, local folder against an S3-compatible server, measured in one run.

1. Round trip (put, then get with its hash check) of a 512x512 PNG and of a 16-frame video
   (its MP4 and its lossless frames), median of --repeats, on each store.
2. A challenge's media path end to end, in one process so the store's share shows: the
   miner's generation stored, the miner API reading it back, the validator storing the
   answer, the validator's reproduction stored, both read back and judged. Median of
   --challenges per store, for an image type and the video type (dev models, the local
   network's challenge sizes).
The S3-compatible server is moto's, a real process on loopback speaking the S3 protocol
(a MinIO or R2 over a network adds its round-trip time per call: two to four calls per
challenge). Ratios are S3 over local, measured side by side.
Run: .venv/bin/python bench/artifact_store.py [--repeats 20] [--challenges 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import storage  # noqa: E402
from app.local_plan import LOCAL_CHALLENGES  # noqa: E402
from app.protocol import media  # noqa: E402
from app.protocol.catalogue import MediaType, get_spec  # noqa: E402
from app.settings import Settings  # noqa: E402
from tests.helpers.s3 import KEY_ID, SECRET, make_bucket, s3_server  # noqa: E402


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def samples():
    import numpy as np

    rng = np.random.default_rng(0)
    png = media.encode(rng.integers(0, 256, (1, 512, 512, 3), dtype=np.uint8), MediaType.PNG)
    frames = rng.integers(0, 256, (16, 256, 256, 3), dtype=np.uint8)
    return {"512x512 PNG": [(png, "png")],
            "16-frame video (MP4 + frames)": [(media.encode(frames, MediaType.MP4, fps=8), "mp4"),
                                              (media.encode_frames(frames), media.FRAMES_EXTENSION)]}


def round_trip(settings: Settings, items, repeats: int) -> float:
    store = storage.store_for(settings, "validator")

    def once():
        for data, ext in items:
            ref, _ = store.put(data, ext)
            assert storage.load(settings, ref) == data
    return timed(once, repeats)


def challenge(settings: Settings, model: str, seed: int) -> float:
    """One challenge's media path; seconds."""
    from app.generation.service import generate_and_record
    from app.verification.pixels import verify

    spec = get_spec(model)
    raw = {"model": model, "prompt": "a lighthouse on a cliff at sunset", "seed": seed,
           "params": {**spec.default_params(), **LOCAL_CHALLENGES.get(model, {})}}
    t0 = time.perf_counter()
    mined = generate_and_record(raw, settings=settings, task_id=f"miner-{model}-{seed}-{time.time()}")
    data = storage.load(settings, mined["artifact_path"])  # the miner API reads its worker's output
    frames = storage.load(settings, mined["frames_path"]) if mined.get("frames_path") else None
    answers = storage.store_for(settings, "validator")  # the validator keeps what it received
    ref, _ = answers.put(data, media.extension(spec.media_type.value))
    frames_ref = answers.put(frames, media.FRAMES_EXTENSION)[0] if frames else None
    truth = generate_and_record(raw, settings=settings, task_id=f"validator-{model}-{seed}-{time.time()}")
    answer, answer_frames = storage.load(settings, ref), storage.load(settings, frames_ref) if frames_ref else None
    if spec.is_video:
        expected = media.decode_frames(storage.load(settings, truth["frames_path"]), raw["params"]["num_frames"])
    else:
        expected = media.decode(storage.load(settings, truth["artifact_path"]), spec.media_type)
    verdict = verify(data=answer, media_type=spec.media_type.value, expected_pixels=expected,
                     expected_sha256=truth["pixel_sha256"], expected_media_type=spec.media_type.value,
                     threshold=0.999, frames=answer_frames)
    assert verdict.rung == "exact", verdict
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--challenges", type=int, default=5)
    parser.add_argument("--models", default="RealisticVision,TextToVideo")
    args = parser.parse_args()
    from app.bootstrap import prepare_database
    from app.progress import steps

    with tempfile.TemporaryDirectory() as tmp, s3_server() as url:
        make_bucket(url, "bench")
        os.environ.setdefault("SEEDGRID_THREADS", "2")
        local = Settings(state_dir=Path(tmp) / "local")
        s3 = Settings(state_dir=Path(tmp) / "s3", artifact_store="s3://bench/run", s3_endpoint_url=url,
                      s3_access_key_id=KEY_ID, s3_secret_access_key=SECRET)
        for s in (local, s3):
            prepare_database(s)
        cases, models = samples(), args.models.split(",")
        with steps(len(cases) + len(models), "round trips and challenges timed") as step:
            print(f"{'round trip (put + get)':<40} {'local':>10} {'S3':>10} {'S3/local':>9}")
            for name, items in cases.items():
                step(f"round trips: {name}")
                size = sum(len(d) for d, _ in items)
                a, b = round_trip(local, items, args.repeats), round_trip(s3, items, args.repeats)
                print(f"{name + f' ({size / 1e6:.2f} MB)':<40} {a * 1000:8.1f}ms {b * 1000:8.1f}ms {b / a:8.2f}x")
            print(f"\n{'challenge, media path end to end':<40} {'local':>10} {'S3':>10} {'S3/local':>9}")
            for model in models:
                step(f"challenges: {model}")
                challenge(local, model, 0)  # loads the engine once (not store time)
                a = statistics.median(challenge(local, model, i + 1) for i in range(args.challenges))
                b = statistics.median(challenge(s3, model, i + 1) for i in range(args.challenges))
                print(f"{model:<40} {a * 1000:8.1f}ms {b * 1000:8.1f}ms {b / a:8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
