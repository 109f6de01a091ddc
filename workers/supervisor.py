"""Runs replicas as separate processes, restarts one that dies, stops them all on a signal.

`seedgrid worker gpu --replicas N` uses it: one process per replica, each pinned to a
GPU round-robin through CUDA_VISIBLE_DEVICES (several replicas on one GPU share it, like
fractional replicas). The supervisor itself never imports torch, so no CUDA state exists
in a parent.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

log = logging.getLogger("seedgrid.supervisor")

MAX_RESTARTS = 5  # within RESTART_WINDOW_S; beyond that the failure is not transient
RESTART_WINDOW_S = 60.0
STOP_GRACE_S = 30.0  # a GPU task in flight gets this long to finish on SIGTERM
START_WAIT_S = 120.0  # the longest the later replicas of a staged start wait for the first to be ready


@dataclass
class Replica:
    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    restarts: list[float] = field(default_factory=list)
    log_path: Path | None = None

    def start(self) -> None:
        out = open(self.log_path, "ab") if self.log_path else None
        # its own process group: a stop reaches its children too, and a terminal's Ctrl-C reaches only us
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT if out else None,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        if out:
            out.close()
        log.info("started %s (pid %d)", self.name, self.proc.pid)

    def signal(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass


def _die_with_parent() -> None:
    """Linux: SIGTERM this child when the supervisor dies, even by SIGKILL, so none is orphaned."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: a supervisor killed with SIGKILL leaves its children running


class ProcessGroup:
    """Replicas started together, restarted when they die (within limits), stopped together."""

    def __init__(self, replicas: list[Replica], log_dir: Path | None = None):
        self.replicas = replicas
        self.cannot_serve = False
        if log_dir:
            for r in replicas:
                r.log_path = log_dir / (r.name.replace(" ", "-") + ".log")

    def start(self, first: Callable[[Replica], bool] | None = None, ready: Callable[[], bool] | None = None,
              timeout: float = START_WAIT_S) -> None:
        """Start every replica; those `first` selects before the rest, which wait until ready() holds
        (or `timeout` passes, or one of the first exits: then the rest start anyway and poll() reports it)."""
        early = [r for r in self.replicas if first and first(r)]
        for r in early:
            r.start()
        deadline = time.monotonic() + timeout
        while early and ready and not ready() and time.monotonic() < deadline:
            if any(r.proc.poll() is not None for r in early):
                break
            time.sleep(0.2)
        for r in self.replicas:
            if r not in early:
                r.start()

    def poll(self) -> str | None:
        """Restart what died; return why the group must stop, if it must. A replica that exited
        CANNOT_SERVE (a known failure it has said in one line: a missing checkpoint, an unreachable
        service, a bad setting) is not restarted: the group stops (`cannot_serve` is set)."""
        from app.explain import CANNOT_SERVE

        for r in self.replicas:
            code = r.proc.poll() if r.proc else None
            if code is None:
                continue
            if code == CANNOT_SERVE:
                self.cannot_serve = True
                where = f" (log: {r.log_path})" if r.log_path else ""
                return f"{r.name} cannot serve{where}"
            now = time.monotonic()
            r.restarts = [t for t in r.restarts if now - t < RESTART_WINDOW_S] + [now]
            if len(r.restarts) > MAX_RESTARTS:
                where = f" (log: {r.log_path})" if r.log_path else ""
                return f"{r.name} exited {code} and failed {MAX_RESTARTS} times in {RESTART_WINDOW_S:.0f} s{where}"
            log.warning("%s exited with code %d; restarting it", r.name, code)
            r.start()
        return None

    def stop(self, first: Callable[[Replica], bool] | None = None) -> int:
        """Stop every replica; those `first` selects first, each stage within STOP_GRACE_S."""
        stages = [[r for r in self.replicas if first(r)], [r for r in self.replicas if not first(r)]] if first else \
            [self.replicas]
        return max(_stop_all(stage) for stage in stages)


def detect_gpus() -> list[str]:
    """GPU ids without initialising CUDA: CUDA_VISIBLE_DEVICES, else nvidia-smi, else none."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g for g in visible.split(",") if g.strip()]
    if shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
        if out.returncode == 0:
            return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]
    return []


def gpu_replicas(models: str, replicas: int, gpus: list[str], name: str | None, loglevel: str) -> list[Replica]:
    out = []
    for i in range(replicas):
        env = dict(os.environ)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
        argv = [sys.executable, "-m", "workers.gpu", "--model", models, "--index", str(i), "--loglevel", loglevel]
        if name:
            argv += ["--name", f"{name}{i}" if replicas > 1 else name]
        out.append(Replica(f"replica {i}", argv, env))
    return out


def validator_processes(name: str, loglevel: str, roles=("io", "default", "gpu", "beat")) -> list[Replica]:
    return [Replica(f"validator {role}",
                    [sys.executable, "-m", "workers.validator", role, "--name", name, "--loglevel", loglevel],
                    dict(os.environ)) for role in roles]


def supervise(replicas: list[Replica]) -> int:
    stopping = False

    def on_signal(signum, _frame):
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    group = ProcessGroup(replicas)
    try:
        group.start()
        while not stopping:
            time.sleep(0.5)
            failure = group.poll()
            if failure:  # a replica that cannot serve has said why in its one line already
                log.log(logging.INFO if group.cannot_serve else logging.ERROR, "%s; stopping all (see its log "
                        "above)", failure)
                break
        return group.stop()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _stop_all(replicas: list[Replica]) -> int:
    live = [r for r in replicas if r.proc and r.proc.poll() is None]
    for r in live:
        r.signal(signal.SIGTERM)  # Celery's warm shutdown: finish the task in hand
    deadline = time.monotonic() + STOP_GRACE_S
    for r in live:
        try:
            r.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0f s; killing it", r.name, STOP_GRACE_S)
            r.signal(signal.SIGKILL)
            r.proc.wait()
    for r in replicas:  # whatever a child left in its process group (e.g. a uvicorn worker)
        r.signal(signal.SIGKILL)
    failed = [r for r in replicas if r.proc and r.proc.returncode not in (0, -signal.SIGTERM)]
    return 1 if failed else 0
