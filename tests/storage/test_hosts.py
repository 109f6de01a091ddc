"""Every role on its own "host": network namespaces on a bridge (tests/helpers/hosts.py), each role
with its own state folder, none shared. The miner API, the miner's GPU worker and the validator
(I/O, default and GPU workers and beat) each run in a namespace of their own; Redis, PostgreSQL
and an S3-compatible server (moto's) are reached over the links. A challenge runs end to end
and is verified (by default, by opening the miner's trajectory across the hosts), and no role
wrote media to a folder."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from app import migrations
from app.chain.local import LocalChain
from app.chain.wallets import create_wallet
from app.local_plan import LOCAL_CHALLENGES
from app.models import Response

from ..conftest import DEV_CHECKPOINTS, ROOT, free_port
from ..helpers.hosts import BRIDGE_IP, can_make_namespaces, forward, hosts
from ..helpers.s3 import KEY_ID, SECRET, make_bucket, s3_server

pytestmark = pytest.mark.slow

NETUID = 15
MODEL = "RealisticVision"
BIN = Path(sys.executable).parent


def test_a_challenge_crosses_four_hosts_sharing_no_folder(postgres_url, tmp_path):
    why = can_make_namespaces()
    if why:
        pytest.skip(why)
    from app.backends.registry import dev_folder

    migrations.upgrade(postgres_url)
    states = {name: tmp_path / name for name in ("minerapi", "minergpu", "validator")}
    for name, state in states.items():  # each host has its own copy of the model files
        state.mkdir()
        if name != "minerapi":
            shutil.copytree(dev_folder(DEV_CHECKPOINTS, MODEL), state / "models" / MODEL)
    chain = LocalChain(postgres_url, NETUID)
    chain.init(block_time=0.5)
    miner, _ = create_wallet(states["minerapi"] / "wallets", "hosts", "miner")
    validator, _ = create_wallet(states["validator"] / "wallets", "hosts", "validator")
    for w, stake in ((miner, 0), (validator, 1_000_000)):
        chain.register(w.hotkey.ss58_address, w.coldkeypub.ss58_address)
        chain.set_stake(w.hotkey.ss58_address, stake)

    procs: list[tuple[str, subprocess.Popen, Path]] = []
    redis_port, pg_port = free_port(), free_port()
    with hosts(list(states)) as net, s3_server(BRIDGE_IP) as s3_url:
        for bucket in ("miner", "validator"):
            make_bucket(s3_url, bucket)
        redis = subprocess.Popen(["redis-server", "--bind", BRIDGE_IP, "--port", str(redis_port), "--save", "",
                                  "--appendonly", "no", "--protected-mode", "no"], stdout=subprocess.DEVNULL)
        relay = forward(pg_port, ("127.0.0.1", 5432))
        try:
            db = postgres_url.replace("127.0.0.1:5432", f"{BRIDGE_IP}:{pg_port}")
            common = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"),
                      "SEEDGRID_REDIS_URL": f"redis://{BRIDGE_IP}:{redis_port}/0", "SEEDGRID_DATABASE_URL": db,
                      "SEEDGRID_S3_ENDPOINT_URL": s3_url, "SEEDGRID_S3_ACCESS_KEY_ID": KEY_ID,
                      "SEEDGRID_S3_SECRET_ACCESS_KEY": SECRET, "SEEDGRID_CHAIN": "local",
                      "SEEDGRID_NETUID": str(NETUID), "SEEDGRID_THREADS": "1", "SEEDGRID_DEVICE": "cpu",
                      "SEEDGRID_TIMEOUT_SCALE": "3", "SEEDGRID_METAGRAPH_TTL": "1",
                      "SEEDGRID_CHALLENGE_PARAMS": json.dumps(LOCAL_CHALLENGES), "SEEDGRID_CHALLENGE_INTERVAL": "3",
                      "SEEDGRID_SYNC_INTERVAL": "2", "SEEDGRID_VALIDATOR_WALLET": "hosts",
                      "SEEDGRID_VALIDATOR_HOTKEY": "validator", "PYTHONUNBUFFERED": "1"}

            def start(host: str, *argv: str, store: str) -> None:
                state = states[host]
                env = {**common, "SEEDGRID_STATE_DIR": str(state), "SEEDGRID_ARTIFACT_STORE": f"s3://{store}",
                       "SEEDGRID_MODEL_PATHS": json.dumps({MODEL: str(state / "models" / MODEL)})}
                log = tmp_path / f"{host}-{len(procs)}.log"
                p = subprocess.Popen(["ip", "netns", "exec", net[host][0], *argv], env=env, cwd=ROOT,
                                     stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
                procs.append((host, p, log))

            api_ip = net["minerapi"][1]
            start("minergpu", str(BIN / "python"), "-m", "workers.gpu", "--model", MODEL, "--name", "hostgpu",
                  store="miner")
            start("minerapi", str(BIN / "seedgrid"), "miner", "serve", "--model", MODEL, "--wallet", "hosts",
                  "--hotkey", "miner", "--host", api_ip, "--port", "8091", "--external-host", api_ip, store="miner")
            for role in ("io", "default", "gpu", "beat"):
                start("validator", str(BIN / "python"), "-m", "workers.validator", role,
                      *(["--model", MODEL] if role == "gpu" else []), "--name", "hostval", store="validator")
            engine = create_engine(postgres_url)
            deadline, verdict = time.monotonic() + 240, None
            while time.monotonic() < deadline and verdict is None:
                dead = [(h, log) for h, p, log in procs if p.poll() is not None]
                assert not dead, f"{dead[0][0]} exited:\n{dead[0][1].read_text()[-3000:]}"
                with engine.connect() as conn:
                    row = conn.execute(select(Response.verdict_rung, Response.artifact_path).where(
                        Response.hotkey == miner.hotkey.ss58_address, Response.verdict_rung.is_not(None))).first()
                verdict = row
                time.sleep(1)
            engine.dispose()
            logs = "\n".join(f"--- {h}\n{log.read_text()[-1500:]}" for h, _, log in procs)
            assert verdict is not None, f"no verdict within 240 s:\n{logs}"
            # the default path: the validator opens the miner's trajectory across hosts (a share is reproduced)
            assert verdict[0] in ("trajectory", "exact") and verdict[1].startswith("s3://validator/validator/"), \
                (verdict, logs)
        finally:
            for _, p, _ in procs:
                try:
                    os.killpg(p.pid, 15)
                except ProcessLookupError:
                    pass
            for _, p, _ in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, 9)
            redis.kill()
            relay.close()
    written = [p for state in states.values() for p in state.rglob("*") if p.is_file() and "artifacts" in p.parts]
    assert not written, f"media written to a host's folder: {written[:5]}"
