"""What the gateway costs and how fast it fails over, each measured side by side in one run.

Three miner APIs over one real GPU worker, the validator's I/O worker and `seedgrid gateway
serve` (bench/_gateway.py), on the same tiny request (1 step, 256 px):
- latency: the same request sent directly to a miner (signed MinerClient.generate) and
  through the gateway (POST /v1/jobs?wait=60, the job done), alternating; the medians, where
  a job's time goes (STAGES, from its timestamps), and the latency the gateway adds: the
  median of each gateway job's time less its own miner call (the signed call a direct client
  makes, timed by the I/O worker), which the generation's spread does not blur as it does the
  difference of the two medians (also printed);
- throughput: `--clients` concurrent clients for `--seconds` against the three miners
  directly (round-robin, a 429 retried after 50 ms) and through the gateway; jobs per
  second and the ratio gateway / direct, and the CPU the gateway and the I/O worker spend per
  job (on one machine, taken from the GPU worker's cores); then the gateway again with the
  validator's processes at nice 19, so the miners' work goes first. With --hosts-apart every
  figure is measured with the miners' processes on half of the cores (the GPU worker with as
  many torch threads) and the validator's and the clients on the other half, so that neither
  takes the other's CPU, as on hosts of their own;
- failover: a slower job (8 steps at 512 px) through the gateway, the miner API that got
  it killed while it generates; the seconds from the kill until another miner's answer
  has the job done.
The added median latency in ms is printed last.
Run: .venv/bin/python bench/gateway.py [--rounds 20] [--clients 32] [--seconds 30] [--hosts-apart]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.setdefault("SEEDGRID_TOTAL_VOLUME", "1000000")  # the bench measures speed, not quotas
os.environ.setdefault("SEEDGRID_MAX_CONCURRENT_REQUESTS", "16")
os.environ.setdefault("SEEDGRID_NETUID", "94")  # its own subnet
os.environ.setdefault("SEEDGRID_TIMEOUT_SCALE", "20")  # 32 clients queue on one CPU worker: no 504 from waiting
os.environ.setdefault("SEEDGRID_GATEWAY_SAMPLE_RATE", "0")  # verification is the validator GPU's cost, not the gateway's
os.environ.setdefault("SEEDGRID_GATEWAY_CHECK_RATE", "0")

from bench._gateway import gateway_under_test  # noqa: E402

REQUEST = {"model": "RealisticVision", "prompt": "a lighthouse at dusk", "params": {"steps": 1, "width": 256,
                                                                                   "height": 256}}


STAGES = {
    "submit": "the POST until the job row exists (key, capacity, rate, insert)",
    "hand-over": "job row to its claim by an I/O worker (Celery)",
    "route": "claim to the attempt's row (lease, routing, quota)",
    "miner": "the signed miner call, as query_miner times it",
    "deliver": "the rest to the job done (query_miner's reads before the call and rows after it, "
               "decoding for the pixel hash, the delivery)",
    "return": "job done to the client holding the answer (wake-up, view, HTTP)",
}


def stage_times(job: dict, sent: float, received: float) -> dict[str, float]:
    """A delivered job's timestamps, cut into STAGES (ms); one machine's clock throughout."""
    from datetime import datetime

    def ts(value: str) -> float:
        return datetime.fromisoformat(value).timestamp()

    attempt = job["attempts"][-1]
    created, started, finished = ts(job["created_at"]), ts(job["started_at"]), ts(job["finished_at"])
    attempt_start = ts(attempt["started_at"])
    answered = attempt_start + attempt["latency_s"]
    cuts = [sent, created, started, attempt_start, answered, finished, received]
    return {name: (b - a) * 1000 for name, a, b in zip(STAGES, cuts, cuts[1:])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--hosts-apart", action="store_true",
                        help="the miners' processes on half of this machine's cores, the validator's and the "
                             "clients on the other half, as on hosts of their own (at least 2 cores)")
    args = parser.parse_args()
    miner_cpus = validator_cpus = None
    if args.hosts_apart:
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) < 2:
            parser.error(f"--hosts-apart needs at least 2 cores to split; this process may use {len(cores)}")
        validator_cpus, miner_cpus = set(cores[:len(cores) // 2]), set(cores[len(cores) // 2:])

    import httpx

    from app.progress import steps
    from app.protocol.client import MinerClient, MinerError

    with gateway_under_test("gwbench", extra_miners=2, miner_cpus=miner_cpus, validator_cpus=validator_cpus) as g:
        if validator_cpus:  # the clients' threads, made from here on, inherit it
            os.sched_setaffinity(0, validator_cpus)
            print(f"hosts apart: the miners on cores {sorted(miner_cpus)}, the validator's side and the clients on "
                  f"{sorted(validator_cpus)}")
        client = MinerClient(g.miner.validator, timeout=120)
        gw = httpx.Client(base_url=g.url, headers={"Authorization": f"Bearer {g.key}"}, timeout=120)

        def direct(i: int, miner: dict | None = None) -> None:
            miner = miner or g.miners[0]
            while True:
                try:
                    client.generate(miner["url"], miner["hotkey"], {**REQUEST, "seed": i})
                    return
                except MinerError as exc:
                    if exc.status != 429:
                        raise
                    time.sleep(0.05)

        with steps(3 + args.rounds + 3 - args.hosts_apart + 1, "gateway bench: latency, throughput, failover") as step:
            stages: dict[str, list[float]] = {name: [] for name in STAGES}

            overhead: list[float] = []  # each timed job's time less its own miner call

            def through(i: int, _k: int = 0, *, timed: bool = False) -> None:
                sent = time.time()
                job = gw.post("/v1/jobs?wait=60", json={**REQUEST, "seed": i}).json()
                if job.get("status") != "done":
                    raise RuntimeError(f"job not done: {job}")
                if timed:
                    received = time.time()
                    for name, ms in stage_times(job, sent, received).items():
                        stages[name].append(ms)
                    overhead.append((received - sent) * 1000 - stages["miner"][-1])

            for i in range(3):  # warm-up: engines loaded, connections open
                step(f"warm-up {i + 1} of 3")
                direct(i)
                through(i)
            times: dict[str, list[float]] = {"direct": [], "gateway": []}
            for i in range(args.rounds):
                step(f"latency: round {i + 1} of {args.rounds}")
                for name, call in (("direct", direct), ("gateway", lambda n: through(n, timed=True))):
                    t0 = time.perf_counter()
                    call(1000 + i)
                    times[name].append((time.perf_counter() - t0) * 1000)
            med = {k: statistics.median(v) for k, v in times.items()}
            print(f"latency, {args.rounds} rounds alternating: direct {med['direct']:.1f} ms | "
                  f"gateway {med['gateway']:.1f} ms (median)")
            print("  where a gateway job's time goes (median ms): " + " | ".join(
                f"{name} {statistics.median(v):.1f}" for name, v in stages.items()))

            import psutil

            validator_side = [psutil.Process(p.pid) for p in g.services.values()]

            def cpu_s() -> float:  # what the gateway and the I/O worker spent, both on this machine's cores
                return sum(p.cpu_times().user + p.cpu_times().system for p in validator_side)

            cpu_per_job: list[float] = []

            def throughput(call) -> float:
                done, stop, lock = [0], time.monotonic() + args.seconds, threading.Lock()
                cpu0 = cpu_s()

                def loop(k: int) -> None:
                    n = 0
                    while time.monotonic() < stop:
                        call(k * 100_000 + n, k)
                        n += 1
                        with lock:
                            done[0] += 1

                t0 = time.monotonic()
                with ThreadPoolExecutor(args.clients) as pool:
                    list(pool.map(loop, range(args.clients)))
                cpu_per_job.append((cpu_s() - cpu0) / max(done[0], 1) * 1000)
                return done[0] / (time.monotonic() - t0)

            step(f"throughput: {args.clients} clients straight to the miners for {args.seconds:g} s")
            direct_rate = throughput(lambda i, k: direct(i, g.miners[k % len(g.miners)]))
            step(f"throughput: {args.clients} clients through the gateway for {args.seconds:g} s")
            gateway_rate = throughput(through)
            apart_rate = None
            if not args.hosts_apart:
                step(f"throughput: through the gateway, its processes at nice 19, for {args.seconds:g} s")
                for p in validator_side:  # the miners' cores first, as when the validator runs on its own host
                    p.nice(19)
                apart_rate = throughput(through)
                for p in validator_side:
                    try:
                        p.nice(0)
                    except psutil.AccessDenied:  # only root may raise a priority again; the failover run is slower
                        pass
            print(f"throughput, {args.clients} clients over {len(g.miners)} miners for {args.seconds:g} s: direct "
                  f"{direct_rate:.2f} jobs/s | gateway {gateway_rate:.2f} jobs/s | ratio {gateway_rate / direct_rate:.2f}")
            if apart_rate is not None:
                print(f"  the validator's processes at nice 19 (this machine's cores go to the miners first): gateway "
                      f"{apart_rate:.2f} jobs/s | ratio {apart_rate / direct_rate:.2f}")
            print(f"  CPU of the gateway and the I/O worker: {cpu_per_job[1]:.1f} ms per gateway job (idle while direct: "
                  f"{cpu_per_job[0]:.1f} ms per job); on one machine it is taken from the GPU worker's cores")

            from app.config import get_settings
            from app.db import session_scope
            from app.models import MinerState

            step("failover: a job's miner killed mid-job")
            with session_scope(get_settings().sqlalchemy_url) as s:  # the job goes to a miner this bench can kill
                s.get(MinerState, g.miners[0]["hotkey"]).reachable = False
            slow = {**REQUEST, "params": {"steps": 8, "width": 512, "height": 512}}
            job = gw.post("/v1/jobs", json=slow).json()
            victim, deadline = None, time.monotonic() + 60
            while victim is None and time.monotonic() < deadline:
                attempts = gw.get(f"/v1/jobs/{job['id']}").json()["attempts"]
                sent = [a for a in attempts if a["status"] in ("pending", "sent")]
                if sent:
                    victim = next((m for i, m in enumerate(g.miners) if i == sent[0]["miner_uid"]), None)
                time.sleep(0.05)
            if victim is None:
                print("failover: the job was never sent to a miner within 60 s")
            else:
                victim["process"].kill()
                killed = time.monotonic()
                while gw.get(f"/v1/jobs/{job['id']}").json()["status"] not in ("done", "failed"):
                    time.sleep(0.05)
                final = gw.get(f"/v1/jobs/{job['id']}").json()
                print(f"failover: the job's miner killed mid-job; {final['status']} by another "
                      f"{time.monotonic() - killed:.2f} s later (attempts: "
                      f"{', '.join(a['status'] for a in final['attempts'])})")
        print(f"difference of the medians: {med['gateway'] - med['direct']:.1f} ms (the generation's own spread, "
              f"tens of ms here, is in it)")
        print(f"added median latency: {statistics.median(overhead):.1f} ms (each gateway job less its own signed "
              f"miner call, the same call a direct client makes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
