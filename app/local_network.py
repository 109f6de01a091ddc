"""`seedgrid up`: a whole network on one machine, supervised, with a live terminal view.

Embedded Redis (unless SEEDGRID_REDIS_URL), SQLite (unless SEEDGRID_DATABASE_URL),
a LocalChain with fast blocks, one validator (I/O, default and GPU workers, beat), miners
for the model types asked for, cheaters, one miner GPU worker, Flower and the dashboard.
A text miner gets a dev text server (and the validator its own); a GoJourney miner gets the
fake GoAPI-style provider from the source checkout (tests/fakes/goapi.py) unless
SEEDGRID_GOJOURNEY_URL names a real one (then each miner needs its key there).
Wallets, registration and stake are done here. A second `seedgrid up` on the same state
folder resumes: the chain, wallets, scores and tiers are kept.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from app.backends.registry import SERVED_MODELS, checkpoint_path, served_spec
from app.chain.local import LocalChain
from app.chain.wallets import create_wallet
from app.llm.devbuild import build_dev_text, dev_text_folder
from app.local_plan import LOCAL_CHALLENGES, LOCAL_TIERS
from app.migrations import ROOT
from app.protocol.catalogue import Payload, get_spec
from app.settings import Settings
from app.testkit.cheats import Cheat, sibling
from workers.supervisor import ProcessGroup, Replica

NETWORK = "local"  # the wallet name every local key lives under
VALIDATOR_STAKE = 1_000_000.0
VALIDATOR_SERVICES = ("dashboard", "gateway", "flower")  # besides the `validator <role>` workers


class UpError(RuntimeError):
    """A local network that cannot start, with what to do about it."""


@dataclass
class Plan:
    miners: list[str] = field(default_factory=lambda: ["RealisticVision", "RealitiesEdgeXL", "TextToVideo", "Gemma7b"])
    cheaters: list[str] = field(default_factory=lambda: ["wrong_seed"])
    block_time: float = 0.1  # 360 blocks in 36 s
    dashboard_port: int = 8000
    flower_port: int = 5555
    gateway_port: int = 8100
    miner_port: int = 8091
    epochs: int | None = None
    duration: float | None = None
    wandb: bool = False

    def validate(self) -> None:
        for m in self.miners:
            if not runs_elsewhere(m):  # a text miner's engine is a text server, an external one's a provider
                served_spec(m)
        for c in self.cheaters:
            if c not in Cheat.strategies:
                raise UpError(f"--cheaters: unknown strategy {c!r}; choose from {', '.join(Cheat.strategies)}")
        if not self.miners and not self.cheaters:
            raise UpError("--miners and --cheaters are both empty: a network needs at least one miner")
        if self.epochs is not None and self.epochs < 1:
            raise UpError("--epochs must be at least 1")


def is_text(model: str) -> bool:
    return get_spec(model).payload is Payload.CHAT


def is_external(model: str) -> bool:
    return get_spec(model).payload is Payload.EXTERNAL_IMAGE


def runs_elsewhere(model: str) -> bool:
    """Not on our GPU workers: a text type (its text server) or an external image type (its provider)."""
    return is_text(model) or is_external(model)


FAKE_PROVIDER = ROOT / "tests" / "fakes" / "goapi.py"


def provider_replica(settings: Settings, env: dict, miners: dict[str, dict]) -> tuple[dict, list[Replica], int | None]:
    """The GoJourney miners' provider: the configured one, or the fake started here; the env with its
    URL (the validator fetches tasks there), the replica to start, and the port to wait for."""
    external = [n for n, m in miners.items() if is_external(m["model"])]
    if not external:
        return env, [], None
    if settings.gojourney_url:
        if not settings.gojourney_api_key:
            raise UpError("SEEDGRID_GOJOURNEY_URL names a real provider: set SEEDGRID_GOJOURNEY_API_KEY to the "
                          "miners' key there too")
        return env, [], None
    if not FAKE_PROVIDER.exists():
        raise UpError(f"GoJourney needs a provider: set SEEDGRID_GOJOURNEY_URL and SEEDGRID_GOJOURNEY_API_KEY, or "
                      f"run from the source checkout, whose fake provider ({FAKE_PROVIDER}) `seedgrid up` starts")
    port = free_port()
    env = {**env, "SEEDGRID_GOJOURNEY_URL": f"http://127.0.0.1:{port}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))}
    keys = ",".join(f"local-{n}" for n in external)
    return env, [Replica("fake provider", [sys.executable, "-m", "tests.fakes.goapi", "--port", str(port),
                                           "--keys", keys], env)], port


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port() -> int:
    """A loopback port nobody listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _miner_ports(start: int, count: int, taken: set[int]) -> list[int]:
    ports, port = [], start
    while len(ports) < count:
        if port > 65535:
            raise UpError(f"no free ports for {count} miners from {start}")
        if port not in taken and port_free(port):
            ports.append(port)
        port += 1
    return ports


def network_env(settings: Settings, plan: Plan) -> dict[str, str]:
    """What every child process of the local network reads (one settings object, by environment)."""
    env = {
        "SEEDGRID_STATE_DIR": str(settings.state_path),
        "SEEDGRID_CHAIN": "local",
        "SEEDGRID_VALIDATOR_WALLET": NETWORK, "SEEDGRID_VALIDATOR_HOTKEY": "validator",
        "SEEDGRID_CHALLENGE_INTERVAL": "6", "SEEDGRID_SYNC_INTERVAL": "3", "SEEDGRID_TICK_INTERVAL": "1",
        "SEEDGRID_METAGRAPH_TTL": "2", "SEEDGRID_TOTAL_VOLUME": "1000", "SEEDGRID_CHALLENGE_GROUP_SIZE": "16",
        "SEEDGRID_THREADS": os.environ.get("SEEDGRID_THREADS", "1"),  # ~15 processes share this machine's cores
        "SEEDGRID_TIMEOUT_SCALE": os.environ.get("SEEDGRID_TIMEOUT_SCALE", "3"),  # CPU, not GPU
        "SEEDGRID_TIER_TABLE": json.dumps(LOCAL_TIERS),
        "SEEDGRID_CHALLENGE_PARAMS": json.dumps({**LOCAL_CHALLENGES, **settings.challenge_params}),
        "PYTHONUNBUFFERED": "1",
    }
    if plan.wandb:
        env.update({"SEEDGRID_WANDB": "true", "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"),
                    "WANDB_DIR": str(settings.state_path / "wandb"), "WANDB_SILENT": "true"})
    return {**os.environ, **env}


@dataclass
class Topology:
    validator: str
    miners: dict[str, dict]  # hotkey name -> {model, port, cheat, hotkey}
    group: ProcessGroup
    logs: Path


def build_missing_checkpoints(settings: Settings, models, console=None) -> list[str]:
    """Build the dev checkpoints (and ControlNets) of `models` that a fresh state folder lacks, with a
    progress display; a type that SEEDGRID_MODEL_PATHS names is the operator's and is never built."""
    from app.backends.registry import build_dev_checkpoint, dev_checkpoint_path
    from app.progress import steps

    missing = [m for m in models if m not in settings.model_paths and not dev_checkpoint_path(settings, m).exists()]
    if not missing:
        return []
    with steps(len(missing), "built the dev checkpoints of " + ", ".join(missing), console) as step:
        for m in missing:
            step(f"building the dev checkpoint of {m} (first run in this state folder)")
            build_dev_checkpoint(settings, m)
    return missing


def prepare(settings: Settings, plan: Plan, console=None) -> tuple[LocalChain, dict[str, dict], str]:
    """Dev checkpoints, subnet, wallets, registrations and stake (idempotent: a second run resumes)."""
    needed = set(plan.miners) | ({"RealisticVision"} if plan.cheaters else set())
    if "other_checkpoint" in plan.cheaters:
        needed.add(sibling("RealisticVision"))
    if any(is_text(m) for m in needed):  # the shipped dev text models, copied (no training)
        build_dev_text(settings)
    build_missing_checkpoints(settings, sorted(m for m in needed if not is_text(m) and not is_external(m)), console)
    for m in sorted(needed - {m for m in needed if is_external(m)}):
        if is_text(m):
            path = settings.model_paths.get(m) or dev_text_folder(settings, m)
            if not Path(path).exists():
                raise UpError(f"no text model for {m} at {path}; set SEEDGRID_MODEL_PATHS or run "
                              "`seedgrid llm build-dev`")
            continue
        path = checkpoint_path(settings, m)
        if not path.exists():  # SEEDGRID_MODEL_PATHS names it: the operator's own checkpoint
            raise UpError(f"no checkpoint for {m} at {path} (SEEDGRID_MODEL_PATHS names it); correct that path, "
                          f"or drop {m} from SEEDGRID_MODEL_PATHS to use its dev checkpoint")
    chain = LocalChain(settings.sqlalchemy_url, settings.netuid)
    if not chain.init(block_time=plan.block_time) and abs(chain.block_time() - plan.block_time) > 1e-9:
        raise UpError(f"subnet {settings.netuid} in {settings.state_path} already runs {chain.block_time():g} s blocks; "
                      f"resume without --block-time {plan.block_time:g}, or use another SEEDGRID_NETUID or state folder")
    wallets = settings.wallets_dir
    validator, _ = create_wallet(wallets, NETWORK, "validator")
    chain.register(validator.hotkey.ss58_address, validator.coldkeypub.ss58_address)
    chain.set_stake(validator.hotkey.ss58_address, VALIDATOR_STAKE)
    miners: dict[str, dict] = {}
    names = [(f"miner-{m}-{i}", m, None) for i, m in enumerate(plan.miners)]
    names += [(f"cheater-{c}", "RealisticVision", c) for c in plan.cheaters]
    for name, model, cheat in names:
        w, _ = create_wallet(wallets, NETWORK, name)
        chain.register(w.hotkey.ss58_address, w.coldkeypub.ss58_address)
        miners[name] = {"model": model, "cheat": cheat, "hotkey": w.hotkey.ss58_address}
    return chain, miners, validator.hotkey.ss58_address


def start(settings: Settings, plan: Plan, console=None) -> Topology:
    plan.validate()
    for port, flag in ((plan.dashboard_port, "--dashboard-port"), (plan.flower_port, "--flower-port"),
                       (plan.gateway_port, "--gateway-port")):
        if not port_free(port):
            raise UpError(f"port {port} on 127.0.0.1 is in use (another `seedgrid up`?); stop it or choose {flag}")
    chain, miners, validator = prepare(settings, plan, console)
    ports = _miner_ports(plan.miner_port, len(miners), {plan.dashboard_port, plan.flower_port, plan.gateway_port})
    gateway_key(settings)
    env = network_env(settings, plan)
    logs = settings.state_path / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    seedgrid = str(Path(sys.executable).parent / "seedgrid")
    models = sorted({m["model"] for m in miners.values() if not runs_elsewhere(m["model"])}
                    | {sibling(m["model"]) for m in miners.values() if m["cheat"] == "other_checkpoint"} - {None},
                    key=SERVED_MODELS.index)
    replicas = [Replica("miner gpu worker", [sys.executable, "-m", "workers.gpu", "--model", ",".join(models),
                                             "--name", "local-gpu"], env)] if models else []
    text_servers = {}  # text model type -> the miners' server port, and the validator's own
    for model in sorted({m["model"] for m in miners.values() if is_text(m["model"])}):
        text_servers[model] = ports_taken = (free_port(), free_port())
        for who, port in zip(("text server", "validator text server"), ports_taken):
            replicas.append(Replica(f"{who} {model}", [seedgrid, "llm", "serve", "--model", model,
                                                       "--port", str(port)], env))
        env = {**env, "SEEDGRID_VALIDATOR_LLM_URL": f"http://127.0.0.1:{ports_taken[1]}"}  # one text type here
    env, provider, provider_port = provider_replica(settings, env, miners)
    replicas += provider
    for (name, m), port in zip(miners.items(), ports):
        m["port"] = port
        argv = [seedgrid, "miner", "serve", "--model", m["model"], "--wallet", NETWORK, "--hotkey", name,
                "--port", str(port)] + (["--cheat", m["cheat"]] if m["cheat"] else [])
        menv = env
        if is_text(m["model"]):
            menv = {**env, "SEEDGRID_LLM_URL": f"http://127.0.0.1:{text_servers[m['model']][0]}"}
        if is_external(m["model"]) and provider:  # the fake provider: each miner its own key
            menv = {**env, "SEEDGRID_GOJOURNEY_API_KEY": f"local-{name}", "SEEDGRID_GOJOURNEY_MODE": "turbo"}
        if m["cheat"] == "reduced_precision":  # its own GPU worker in bfloat16, on a broker of its own
            menv = {**env, "SEEDGRID_DTYPE": "bfloat16",
                    "SEEDGRID_REDIS_URL": settings.broker_url.rsplit("/", 1)[0] + f"/{REDUCED_PRECISION_DB}"}
            replicas.append(Replica(f"{name} gpu worker", [sys.executable, "-m", "workers.gpu", "--model", m["model"],
                                                           "--name", "local-gpu-bf16"], menv))
        replicas.append(Replica(name, argv, menv))
    for role in ("io", "default", "gpu", "beat"):  # gpu: reproductions and verdicts (text and external too)
        extra = ["--model", ",".join(models) or "none"] if role == "gpu" else []  # reproduce only what is served
        replicas.append(Replica(f"validator {role}", [sys.executable, "-m", "workers.validator", role, *extra], env))
    replicas.append(Replica("dashboard", [seedgrid, "validator", "dashboard", "--port", str(plan.dashboard_port)], env))
    replicas.append(Replica("gateway", [seedgrid, "gateway", "serve", "--port", str(plan.gateway_port)], env))
    user, password = flower_credentials(settings)
    replicas.append(Replica("flower", [sys.executable, "-m", "celery", "-A", "app.celery_app", "flower",
                                       "--address=127.0.0.1", f"--port={plan.flower_port}",
                                       f"--basic-auth={user}:{password}"], env))
    group = ProcessGroup(replicas, log_dir=logs)
    # the miners first, the validator once their APIs listen: a round started before a miner
    # is up (its state says reachable from the last run) would count the refused call against it
    listening = [m["port"] for m in miners.values()] + [p for p, _ in text_servers.values()] \
        + ([provider_port] if provider_port else [])
    from app.progress import steps

    with steps(len(listening) + 1, f"{len(replicas)} processes started", console) as step:
        step(f"starting the miners' side; waiting for {len(listening)} APIs to listen (GPU workers load first)")
        seen: set[int] = set()

        def ready() -> bool:
            up = {p for p in listening if not port_free(p)}
            for p in sorted(up - seen):
                seen.add(p)
                step(f"{len(seen)} of {len(listening)} APIs listening (port {p}); then the validator's side")
            return len(up) == len(listening)

        group.start(first=lambda r: not validator_side(r), ready=ready)
    return Topology(validator, miners, group, logs)


def validator_side(replica: Replica) -> bool:
    """The validator's processes: its workers, gateway, dashboard and Flower (the rest are miners')."""
    return replica.name.startswith("validator ") or replica.name in VALIDATOR_SERVICES


FLOWER_USER = "seedgrid"
REDUCED_PRECISION_DB = 12  # the reduced-precision cheater's own broker (a Redis database of the same server)


def gateway_key(settings: Settings) -> str:
    """The local network's API key: created once per state folder, kept there (mode 0600) for
    `seedgrid submit`, curl and the OpenAI client."""
    from app.db import session_scope
    from app.gateway.keys import create_key

    def make() -> str:
        with session_scope(settings.sqlalchemy_url) as s:
            return create_key(s, name=f"local-{os.urandom(3).hex()}", rate_per_minute=600, daily_quota=100_000)[1]

    return state_secret(settings.state_path / "gateway-key", make)


def flower_credentials(settings: Settings) -> tuple[str, str]:
    """Flower's basic-auth user and password: made once per state folder, kept there (mode 0600).

    Flower's API can revoke tasks and shut workers down; even on loopback it takes a password.
    """
    import secrets

    return FLOWER_USER, state_secret(settings.state_path / "flower-password", lambda: secrets.token_urlsafe(18))


def state_secret(path: Path, make: Callable[[], str]) -> str:
    """A secret kept in the state folder: made once (make()), written readable by its owner only (0600)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = make()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret + "\n")
    return path.read_text().strip()


def lock_state_folder(settings: Settings):
    """One network per state folder: a second `seedgrid up` on it is refused with what to do."""
    from app.locks import AlreadyHeld, ProcessLock

    try:
        return ProcessLock(settings.state_path / "up.lock").acquire()
    except AlreadyHeld as exc:
        raise UpError(f"another `seedgrid up` ({exc.owner or 'a running process'}) uses the state folder "
                      f"{settings.state_path}; stop it first (Ctrl-C in its terminal), or set SEEDGRID_STATE_DIR "
                      f"to another folder for a second network") from None


def withdraw_axons(settings: Settings, miners: dict[str, dict]) -> None:
    """The miners stopped: clear their addresses on the chain, so no entry points at a dead port."""
    chain = LocalChain(settings.sqlalchemy_url, settings.netuid)
    for m in miners.values():
        chain.withdraw_axon(m["hotkey"])


def install_stop_handlers(flag: dict) -> None:
    def stop(signum, _frame):
        flag["stop"] = signal.Signals(signum).name

    # SIGHUP: the terminal was closed; stop as for Ctrl-C, so nothing is left running
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)


# -- the run loop and the terminal view -------------------------------------------------
def snapshot(settings: Settings, chain: LocalChain) -> dict:
    from sqlalchemy import func, select

    from app.db import session_scope
    from app.models import Challenge, TierChange, WeightSet
    from app.validator import views

    with session_scope(settings.sqlalchemy_url) as s:
        # rollovers of epochs in which miners were actually queried (a fresh network's first,
        # partial epoch may end before any result)
        rolled = list(s.scalars(select(TierChange.epoch).where(TierChange.request_rate.is_not(None))
                                .distinct().order_by(TierChange.epoch)))
        weights = {ws.epoch: ws.status for ws in s.scalars(select(WeightSet))}
        challenges = s.scalar(select(func.count()).select_from(Challenge)) or 0
    block = chain.block()
    return {"block": block, "epoch": block // settings.epoch_length, "rolled": rolled, "weights": weights,
            "challenges": challenges, "board": views.leaderboard(settings),
            "verdicts": views.recent_verdicts(settings), "tiers": views.recent_tier_changes(settings)}


def render(snap: dict, topo: Topology, plan: Plan, started: float):
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table

    from app.validator.views import rates

    names = {m["hotkey"]: n for n, m in topo.miners.items()}
    head = (f"block {snap['block']}  epoch {snap['epoch']}  rollovers {len(snap['rolled'])}  "
            f"challenges {snap['challenges']}  up {time.time() - started:.0f} s   "
            f"dashboard http://127.0.0.1:{plan.dashboard_port}  flower http://127.0.0.1:{plan.flower_port} "
            f"(user {FLOWER_USER}, password in {topo.logs.parent / 'flower-password'})\n"
            f"gateway http://127.0.0.1:{plan.gateway_port}  (API key in {topo.logs.parent / 'gateway-key'}; "
            f"try `seedgrid submit --model {plan.miners[0] if plan.miners else 'RealisticVision'} --prompt ...`)\n"
            f"[yellow]tier table scaled down for a local run[/]   Ctrl-C stops every process")
    board = Table(title="leaderboard", expand=True)
    numeric = ("uid", "requests now / last", "validation now / last", "score", "weight")
    for col in ("uid", "miner", "model", "tier", *numeric[1:3], "score", "weight"):
        board.add_column(col, justify="right" if col in numeric else "left")
    pct = lambda v: "-" if v is None else f"{v:.0%}"  # noqa: E731
    for r in snap["board"]:
        board.add_row(str(r["uid"]), names.get(r["hotkey"], r["hotkey"][:10]), r["model"] or "-", r["tier"],
                      *rates(r, pct), f"{r['score']:.4f}", f"{r['weight']:.4f}")
    verdicts = Table(title="recent verdicts", expand=True)
    for col in ("uid", "model", "verdict", "similarity", "latency", "why"):
        verdicts.add_column(col)
    for v in snap["verdicts"]:
        color = {"exact": "green", "trajectory": "green", "tolerant": "yellow"}.get(v["verdict"], "red")
        verdicts.add_row(str(v["uid"]), v["model"], f"[{color}]{v['verdict']}[/]",
                         "-" if v["similarity"] is None else f"{v['similarity']:.6f}",
                         "-" if v["latency_s"] is None else f"{v['latency_s']:.2f} s", (v["reason"] or "")[:60])
    tiers = Table(title="tier changes", expand=True)
    for col in ("epoch", "uid", "change", "why"):
        tiers.add_column(col)
    for t in snap["tiers"]:
        tiers.add_row(str(t["epoch"]), str(t["uid"]), f"{t['from']} -> {t['to']}", t["reason"][:70])
    return Group(Panel(head, title="Seedgrid local network"), board, verdicts, tiers)


def run(settings: Settings, plan: Plan, console) -> int:
    """Start everything, show it live, stop everything; 0 when a bounded run completed."""

    lock = lock_state_folder(settings)
    try:
        return _run_locked(settings, plan, console)
    finally:
        lock.release()


def _run_locked(settings: Settings, plan: Plan, console) -> int:
    from app.bootstrap import prepare_database, prepare_redis

    redis = prepare_redis(settings)
    prepare_database(settings)
    stop: dict = {}
    install_stop_handlers(stop)
    started = time.time()
    topo = None
    try:
        topo = start(settings, plan, console)
        chain = LocalChain(settings.sqlalchemy_url, settings.netuid)
        first = snapshot(settings, chain)
        baseline = set(first["rolled"])
        console.print(f"network up: {len(topo.miners)} miners, validator {topo.validator[:10]}..., logs in {topo.logs}")
        reason, done_at = None, None
        from rich.live import Live

        with Live(render(first, topo, plan, started), console=console, refresh_per_second=2,
                  auto_refresh=console.is_terminal) as live:
            while not stop:
                time.sleep(1)
                failure = topo.group.poll()
                if failure:
                    reason = f"stopped: {failure}"
                    break
                snap = snapshot(settings, chain)
                live.update(render(snap, topo, plan, started))
                if not console.is_terminal and int(time.time() - started) % 15 == 0:
                    console.print(f"block {snap['block']} epoch {snap['epoch']} rollovers "
                                  f"{len(set(snap['rolled']) - baseline)} challenges {snap['challenges']}")
                new = sorted(set(snap["rolled"]) - baseline)
                if plan.epochs and len(new) >= plan.epochs:
                    last = new[plan.epochs - 1]
                    done_at = done_at or time.time()
                    if snap["weights"].get(last) == "set" or time.time() - done_at > 30:
                        reason = "done"
                        break
                if plan.duration and time.time() - started >= plan.duration:
                    reason = "done"
                    break
        reason = reason or f"stopped by {stop.get('stop', 'request')}"
    finally:
        if topo:
            console.print("stopping every process ...")
            # the validator's side first: its queries in flight finish while the miners still
            # answer, so stopping the network counts no failure against a miner
            topo.group.stop(first=validator_side)
            withdraw_axons(settings, topo.miners)
        redis.stop()
    snap = snapshot(settings, LocalChain(settings.sqlalchemy_url, settings.netuid))
    console.print(render(snap, topo, plan, started))
    console.print(reason)
    return 0 if reason == "done" or reason.startswith("stopped by") else 1
