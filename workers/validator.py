"""Validator process entry points: `python -m workers.validator io|default|gpu|beat`.

- io: a thread pool (many concurrent HTTP calls to miners: sync and queries).
- default: scoring and bookkeeping (rounds, epoch ticks, weights, pruning).
- gpu: reproduction and verification, solo pool, every diffusion pipeline preloaded once.
- beat: the schedule in beat_schedule.py.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys

ROLES = ("io", "default", "gpu", "beat")
IO_CONCURRENCY = 16  # queries mostly wait on miners; threads are cheap


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workers.validator", description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=ROLES)
    parser.add_argument("--name", default="validator", help="node name prefix")
    parser.add_argument("--model", default="all", help="gpu role: model types to preload ('none': only text and "
                                                        "external answers are judged here, nothing reproduced)")
    parser.add_argument("--loglevel", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.loglevel, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)

    from app.bootstrap import prepare_database, prepare_redis
    from app.config import get_settings
    from app.validator.context import validator_wallet

    settings = get_settings()
    validator_wallet(settings)  # every role works for it (signed queries, weights): none starts without it
    prepare_redis(settings)
    prepare_database(settings)
    from app.celery_app import celery_app
    from app.queues import Queue

    host = socket.gethostname()
    common = ["--task-events", "--without-mingle", "--without-gossip", "--loglevel", args.loglevel]
    if args.role == "beat":
        from beat_schedule import build_schedule

        celery_app.conf.beat_schedule = build_schedule(settings)
        schedule = settings.state_path / f"{args.name}-beat-schedule"
        celery_app.start(["beat", "--schedule", str(schedule), "--loglevel", args.loglevel])
        return 0
    if args.role == "io":
        argv_ = ["--pool", "threads", "--concurrency", str(IO_CONCURRENCY), "--queues", Queue.IO.value]
    elif args.role == "default":
        argv_ = ["--pool", "threads", "--concurrency", "2", "--queues", Queue.DEFAULT.value]
    else:
        from app.generation.service import preload
        from workers.gpu import parse_models

        preload([] if args.model == "none" else parse_models(args.model), settings)
        argv_ = ["--pool", "solo", "--queues", Queue.VALIDATOR_GPU.value, "--prefetch-multiplier", "1"]
    celery_app.worker_main(["worker", *argv_, "--hostname", f"{args.name}-{args.role}@{host}", *common])
    return 0


if __name__ == "__main__":
    from app.explain import run_entry_point

    sys.exit(run_entry_point(main))
