"""Every known error through every command it can reach (issue 15): exactly one line on stderr that
says what happened and what to set or run, no traceback, no password, a non-zero exit.

Each command is a real `seedgrid` process (or the worker module the supervisors start) on its own
copy of a ready state folder: migrated, its local subnet made, the validator's and a miner's wallets
in it. One test per error walks its commands a few at a time. `COMMANDS` names every command of
`seedgrid`; a new one fails `test_every_command_is_walked` until it is added here."""

import json
import os
import shutil
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import pytest

from .conftest import ROOT, free_port
from .helpers.commands import seedgrid

SECRET = "hunter2-secret"
MODULE = str(Path(sys.executable))

# every command, with arguments that are right apart from the error; {port}: a free port (a busy one for
# that error), {tmp}: the case's own folder
COMMANDS = {
    "db upgrade": ["db", "upgrade"],
    "db current": ["db", "current"],
    "models list": ["models", "list"],
    "models build-dev": ["models", "build-dev", "--model", "RealisticVision"],
    "models train-dev": ["models", "train-dev", "--steps", "1", "--vae-steps", "1", "--out", "{tmp}/weights"],
    "models export-single-file": ["models", "export-single-file", "--model", "RealisticVision", "--out",
                                  "{tmp}/model.safetensors"],
    "worker gpu": ["worker", "gpu", "--model", "RealisticVision"],
    "worker gpu --role validator": ["worker", "gpu", "--role", "validator", "--model", "RealisticVision"],
    "worker io": ["worker", "io"],
    "worker default": ["worker", "default"],
    "beat": ["beat"],
    "generate": ["generate", "--model", "RealisticVision", "--prompt", "a lighthouse", "--seed", "1"],
    "generate --via-queue": ["generate", "--model", "RealisticVision", "--prompt", "a lighthouse", "--seed", "1",
                             "--via-queue", "--timeout", "5"],
    "redis start": ["redis", "start"],
    "redis stop": ["redis", "stop"],
    "calibrate": ["calibrate", "--models", "RealisticVision", "--challenges", "1", "--out", "{tmp}/c.json"],
    "demo": ["demo"],
    "doctor": ["doctor"],
    "settings": ["settings"],
    "gateway serve": ["gateway", "serve", "--port", "{port}"],
    "gateway keys create": ["gateway", "keys", "create", "--name", "k"],
    "gateway keys list": ["gateway", "keys", "list"],
    "gateway keys revoke": ["gateway", "keys", "revoke", "--name", "k"],
    "submit": ["submit", "--model", "RealisticVision", "--prompt", "a lighthouse", "--key", "sg_none"],
    "llm serve": ["llm", "serve", "--model", "Gemma7b", "--port", "{port}"],
    "llm build-dev": ["llm", "build-dev"],
    "llm train-dev": ["llm", "train-dev", "--steps", "1", "--out", "{tmp}/text"],
    "wallet create": ["wallet", "create", "--name", "w2", "--hotkey", "h2"],
    "chain init": ["chain", "init"],
    "chain register": ["chain", "register", "--wallet", "{wallet}", "--hotkey", "h"],
    "chain stake": ["chain", "stake", "--wallet", "{wallet}", "--hotkey", "h", "--amount", "1"],
    "chain show": ["chain", "show"],
    "chain block": ["chain", "block"],
    "miner serve": ["miner", "serve", "--model", "RealisticVision", "--wallet", "{wallet}", "--hotkey", "h",
                    "--port", "{port}", "--no-announce"],
    "validator run": ["validator", "run"],
    "validator dashboard": ["validator", "dashboard", "--port", "{port}"],
    "validator status": ["validator", "status"],
    "up": ["up", "--duration", "5", "--dashboard-port", "{port}", "--flower-port", "{port}", "--gateway-port",
           "{port}", "--miner-port", "{port}"],
}
# the processes the supervisors (`validator run`, `seedgrid up`) start: they exit 78 and are not restarted
WORKERS = {
    "python -m workers.gpu": ["-m", "workers.gpu", "--model", "RealisticVision"],
    "python -m workers.validator io": ["-m", "workers.validator", "io"],
    "python -m workers.validator beat": ["-m", "workers.validator", "beat"],
}
VALIDATOR_ROLES = ["worker io", "worker default", "beat", "worker gpu --role validator", "validator run",
                   "python -m workers.validator io", "python -m workers.validator beat"]
USES_DATABASE = ["worker gpu", "gateway serve", "gateway keys create", "gateway keys list", "gateway keys revoke",
                 "chain init", "chain register", "chain stake", "chain show", "chain block", "miner serve",
                 "validator dashboard", "validator status", "up", "python -m workers.gpu", *VALIDATOR_ROLES]


def _leaf_commands(group: click.Group, prefix: str = "") -> set[str]:
    out = set()
    for name, cmd in group.commands.items():
        path = f"{prefix}{name}"
        out |= _leaf_commands(cmd, path + " ") if isinstance(cmd, click.Group) else {path}
    return out


def test_every_command_is_walked():
    from app.cli import main

    assert _leaf_commands(main) == {name.split(" --")[0] for name in COMMANDS}


@pytest.fixture(scope="module")
def ready_state(tmp_path_factory, settings, redis_url):
    """A state folder every command could start from: migrated, subnet 1 made, the wallets in it."""
    from app import migrations
    from app.chain.local import LocalChain
    from app.chain.wallets import create_wallet
    from app.settings import Settings

    state = tmp_path_factory.mktemp("ready")
    url = f"sqlite:///{state}/seedgrid.db"
    migrations.upgrade(url)
    LocalChain(url, 1).init(block_time=12)
    wallets = Settings(state_dir=state).wallets_dir
    create_wallet(wallets, settings.validator_wallet, settings.validator_hotkey)
    create_wallet(wallets, "w", "h")
    behind = state.parent / "behind.db"
    migrations.upgrade(f"sqlite:///{behind}", "0005")
    return state, behind


def _walk(ready_state, tmp_path, names, env, *, wallet="w", busy=None):
    """Run each named command on its own copy of the ready state; (name, returncode, stderr) each."""
    state, behind = ready_state

    def one(name):
        folder = tmp_path / name.replace(" ", "_").replace("-", "")
        shutil.copytree(state, folder / "state")
        shutil.copy(behind, folder / "behind.db")
        args = COMMANDS.get(name) or WORKERS[name]
        ports = iter([busy] * 4 if busy else [str(free_port() + i) for i in range(4)])
        args = [a.format(tmp=folder, wallet=wallet, port="{port}") for a in args]
        args = [next(ports) if a == "{port}" else a for a in args]
        case_env = {"SEEDGRID_STATE_DIR": str(folder / "state"), "SEEDGRID_DATABASE_URL": None,
                    **{k: v.replace("{tmp}", str(folder)) if v else v for k, v in env.items()}}
        if name in WORKERS:
            merged = {**os.environ, **case_env}
            p = subprocess.run([MODULE, *args], capture_output=True, text=True, cwd=ROOT, timeout=300,
                               env={k: v for k, v in merged.items() if v is not None})
        else:
            p = seedgrid(*args, env=case_env)
        return name, p.returncode, p.stderr

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, names))


def _check(results, *words):
    """Every result: non-zero, exactly one line holding every word, no traceback, no secret."""
    wrong = []
    for name, rc, stderr in results:
        lines = stderr.strip().splitlines()
        expected_rc = 78 if name in WORKERS else 1
        if (rc != expected_rc or len(lines) != 1 or "Traceback" in stderr or SECRET in stderr
                or not all(w in lines[0] for w in words)):
            wrong.append(f"{name}: exit {rc}, stderr:\n{stderr[-1500:]}")
    assert not wrong, "\n\n".join(wrong)


def test_a_bad_setting(ready_state, tmp_path):
    every = [*COMMANDS, *WORKERS]
    _check(_walk(ready_state, tmp_path, every, {"SEEDGRID_THREADS": "many"}), "SEEDGRID_THREADS", "integer")


def test_an_unreachable_broker(ready_state, tmp_path):
    names = ["worker gpu", "gateway serve", "miner serve", "generate --via-queue", "redis start", "up",
             "python -m workers.gpu", *VALIDATOR_ROLES]
    env = {"SEEDGRID_REDIS_URL": f"redis://:{SECRET}@127.0.0.1:1/0"}
    _check(_walk(ready_state, tmp_path, names, env), "SEEDGRID_REDIS_URL", "127.0.0.1:1")


def test_an_unreachable_database(ready_state, tmp_path):
    names = ["db upgrade", "db current", *USES_DATABASE]
    env = {"SEEDGRID_DATABASE_URL": f"postgresql+psycopg://seedgrid:{SECRET}@127.0.0.1:1/x"}
    _check(_walk(ready_state, tmp_path, names, env), "SEEDGRID_DATABASE_URL", "cannot be reached")


def test_a_database_behind_the_code(ready_state, tmp_path):
    env = {"SEEDGRID_DATABASE_URL": "sqlite:///{tmp}/behind.db"}
    _check(_walk(ready_state, tmp_path, USES_DATABASE, env), "0005", "seedgrid db upgrade")


def test_a_missing_checkpoint(ready_state, tmp_path):
    names = ["worker gpu", "worker gpu --role validator", "generate", "calibrate", "models export-single-file",
             "up", "python -m workers.gpu"]
    paths = json.loads(os.environ["SEEDGRID_MODEL_PATHS"])  # the other types' dev checkpoints: nothing is built
    env = {"SEEDGRID_MODEL_PATHS": json.dumps({**paths, "RealisticVision": "/nonexistent/RealisticVision"})}
    _check(_walk(ready_state, tmp_path, names, env), "/nonexistent/RealisticVision", "SEEDGRID_MODEL_PATHS")
    env = {"SEEDGRID_MODEL_PATHS": json.dumps({**paths, "Gemma7b": "/nonexistent/Gemma7b"})}
    _check(_walk(ready_state, tmp_path / "text", ["llm serve"], env), "/nonexistent/Gemma7b", "SEEDGRID_MODEL_PATHS")


def test_a_wallet_not_found(ready_state, tmp_path):
    names = ["miner serve", "chain register", "chain stake"]
    _check(_walk(ready_state, tmp_path, names, {}, wallet="nobody"), "wallet 'nobody'", "seedgrid wallet create")
    env = {"SEEDGRID_VALIDATOR_WALLET": "nobody"}
    _check(_walk(ready_state, tmp_path / "validator", VALIDATOR_ROLES, env), "wallet 'nobody'",
           "seedgrid wallet create", "SEEDGRID_VALIDATOR_WALLET")


def test_a_busy_port(ready_state, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = str(s.getsockname()[1])
        names = ["gateway serve", "validator dashboard", "miner serve", "llm serve", "up"]
        _check(_walk(ready_state, tmp_path, names, {}, busy=busy), f"port {busy}", "--")
