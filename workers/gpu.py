"""GPU worker process: consumes generate.<model type> queues, one task at a time.

Each process pins its torch runtime and loads its pipelines once, before it consumes
anything, then runs Celery's solo pool: tasks execute in this very process, so there
is no forking parent that could have initialised CUDA, and the loaded pipeline is the
one every task uses. Replicas are separate processes (workers/supervisor.py).

    python -m workers.gpu --model RealisticVision [--name NAME] [--index I]
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys

from app.backends.registry import SERVED_MODELS
from app.protocol.errors import InvalidRequest


def parse_models(value: str) -> list[str]:
    """'all', one model type, or a comma-separated list."""
    if value == "all":
        return list(SERVED_MODELS)
    models = [m.strip() for m in value.split(",") if m.strip()]
    if not models:
        raise InvalidRequest("model", "name at least one model type, or 'all'")
    for m in models:
        if m not in SERVED_MODELS:
            raise InvalidRequest("model", f"{m!r} is not a model type served here; choose from {', '.join(SERVED_MODELS)} or 'all'")
    return models


def node_name(models: list[str], index: int, name: str | None) -> str:
    base = name or f"gpu{index}.{models[0] if len(models) == 1 else 'multi'}"
    return f"{base}@{socket.gethostname()}"


def publish_environment(engines, settings) -> None:
    """Tell the miner API (GET /v1/info) what environment this model's outputs come from."""
    import json

    import redis

    from app.keys import WORKER_ENVIRONMENT as ENV_KEY

    client = redis.Redis.from_url(settings.broker_url)
    for engine in engines:
        client.set(ENV_KEY.format(model=engine.spec.name), json.dumps(engine.environment))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workers.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model type, comma list, or 'all'")
    parser.add_argument("--index", type=int, default=0, help="replica index (names the node)")
    parser.add_argument("--name", default=None, help="node name before '@' (default gpuN.MODEL)")
    parser.add_argument("--loglevel", default="INFO")
    args = parser.parse_args(argv)
    models = parse_models(args.model)

    logging.basicConfig(level=args.loglevel, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    from app.bootstrap import prepare_database, prepare_redis
    from app.config import get_settings

    settings = get_settings()
    prepare_redis(settings)
    prepare_database(settings)

    from app.celery_app import celery_app
    from app.generation.service import preload, settle_abandoned
    from app.queues import Queue

    engines = preload(models, settings)  # before consuming: no task ever waits for a load
    publish_environment(engines, settings)
    node = node_name(models, args.index, args.name)
    # What this node left running when it was killed is not running now; nor is anything
    # older than any live attempt can be.
    settled = settle_abandoned(settings, worker=node) + settle_abandoned(settings)
    if settled:
        logging.getLogger(__name__).warning("settled %d generation rows abandoned by a killed worker", settled)
    queues = ",".join(Queue.generate(m).value for m in models)
    celery_app.worker_main([
        "worker", "--pool", "solo", "--queues", queues, "--hostname", node,
        "--prefetch-multiplier", "1", "--task-events", "--without-mingle", "--without-gossip", "--loglevel", args.loglevel,
    ])
    return 0


if __name__ == "__main__":
    from app.explain import run_entry_point

    sys.exit(run_entry_point(main))
