"""`seedgrid up` as a user runs it: a whole network in a fresh state folder, on embedded defaults."""

import json
import os
import signal
import socket
import subprocess
import time

import httpx
import pytest

from .conftest import free_port
from .helpers.commands import SEEDGRID

pytestmark = pytest.mark.slow


def up_env(state):
    env = {**os.environ, "SEEDGRID_STATE_DIR": str(state), "SEEDGRID_EMBEDDED_REDIS_PORT": str(free_port())}
    # the embedded defaults, and the validator's default verification: trajectories, a share reproduced
    for k in ("SEEDGRID_REDIS_URL", "SEEDGRID_DATABASE_URL", "SEEDGRID_NETUID", "SEEDGRID_REPRODUCTION_SHARE"):
        env.pop(k, None)
    return env


def leftovers(state) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(state) in line and "ps -eo" not in line]


def wait_http(url, proc, timeout=180, auth=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            r = httpx.get(url, timeout=1, auth=auth)
            if r.status_code == 200:
                return r
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} never answered")


def test_bounded_run_exits_0_with_the_cheater_last(tmp_path):
    """From an empty state folder (no SEEDGRID_MODEL_PATHS: the dev checkpoints built by `seedgrid up`
    itself, with a progress display) to weights that rank the cheater last, on the default verification
    (trajectories)."""
    ports = [free_port() for _ in range(3)]
    log = open(tmp_path / "up.log", "w+")
    env = up_env(tmp_path / "state")
    env.pop("SEEDGRID_MODEL_PATHS", None)
    proc = subprocess.Popen([SEEDGRID, "up", "--epochs", "1", "--miners", "RealisticVision,TextToVideo",
                             "--cheaters", "blank", "--dashboard-port", str(ports[0]), "--flower-port", str(ports[1]),
                             "--gateway-port", str(free_port()),
                             "--miner-port", str(ports[2])], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        status = wait_http(f"http://127.0.0.1:{ports[0]}/api/status", proc).json()
        assert status["tier_table_scaled"] and status["chain"] == "local"
        # one network per state folder: a second `seedgrid up` on it is refused, and changes nothing
        second = subprocess.run([SEEDGRID, "up", "--epochs", "1", "--dashboard-port", str(free_port()),
                                 "--flower-port", str(free_port()), "--gateway-port", str(free_port()), "--miner-port", str(free_port())],
                                env=up_env(tmp_path / "state"), capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and "another `seedgrid up`" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr
        # Flower's API takes the password `seedgrid up` keeps in the state folder (mode 0600)
        password_file = tmp_path / "state" / "flower-password"
        assert oct(password_file.stat().st_mode & 0o777) == "0o600"
        auth = ("seedgrid", password_file.read_text().strip())
        wait_http(f"http://127.0.0.1:{ports[1]}/healthcheck", proc)
        assert httpx.get(f"http://127.0.0.1:{ports[1]}/api/workers", timeout=10).status_code == 401
        workers = wait_http(f"http://127.0.0.1:{ports[1]}/api/workers?refresh=1", proc, auth=auth).json()
        deadline = time.monotonic() + 60
        def both(ws):  # the miner's GPU worker and the validator's workers, as Flower sees them (a solo
            # worker busy generating answers Flower's inspect only between tasks, so any validator role counts)
            return any(w.startswith("local-gpu@") for w in ws) and any(w.startswith("validator-") for w in ws)

        while not both(workers) and time.monotonic() < deadline:
            time.sleep(2)
            try:  # a refresh asks every worker; a busy solo worker may make Flower drop the request
                workers = httpx.get(f"http://127.0.0.1:{ports[1]}/api/workers?refresh=1", timeout=10,
                                    auth=auth).json()
            except httpx.HTTPError:
                continue
        assert both(workers), list(workers)
        assert proc.wait(timeout=300) == 0
    finally:
        if proc.poll() is None:  # a failed assertion: stop it as a user would, so it stops its children
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    log.seek(0)
    output = log.read()
    assert output.rstrip().endswith("done"), output[-3000:]
    assert "dev checkpoints of RealisticVision, TextToVideo" in output and "2/2" in output, output[:3000]
    assert (tmp_path / "state" / "checkpoints" / "dev" / "TextToVideo").is_dir()
    board = json.loads(subprocess.run([SEEDGRID, "validator", "status", "--json"], capture_output=True, text=True,
                                      env=env).stdout)
    assert len(board) == 3
    cheater = board[-1]
    assert cheater["score"] < 0 and cheater["weight"] == 0 and cheater["tier"] == "Bronze"
    assert all(r["weight"] > 0 for r in board[:-1]), (board, output[-4000:])
    assert not leftovers(tmp_path / "state"), "every child process stopped"


def test_a_closed_terminal_stops_everything_and_a_second_run_resumes(tmp_path):
    """SIGHUP (the terminal window closed) stops every child and the embedded Redis, like Ctrl-C or
    SIGTERM (one handler); no chain entry is left pointing at a stopped miner's port."""
    state = tmp_path / "state"
    port = free_port()
    args = [SEEDGRID, "up", "--miners", "RealisticVision", "--cheaters", "", "--dashboard-port", str(port),
            "--flower-port", str(free_port()), "--gateway-port", str(free_port()), "--miner-port", str(free_port())]
    proc = subprocess.Popen(args, env=up_env(state), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    wait_http(f"http://127.0.0.1:{port}/api/status", proc)
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=90) == 0
    assert not leftovers(state)
    shown = json.loads(subprocess.run([SEEDGRID, "chain", "show", "--json"], env=up_env(state), capture_output=True,
                                      text=True, timeout=60).stdout)
    assert shown["neurons"] and all(n["axon"] is None for n in shown["neurons"]), shown
    again = subprocess.run([*args[:2], "--duration", "1", *args[2:]], env=up_env(state), capture_output=True,
                           text=True, timeout=180)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert not leftovers(state)


def test_a_busy_port_is_named(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        p = subprocess.run([SEEDGRID, "up", "--dashboard-port", str(busy)], env=up_env(tmp_path),
                           capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and f"port {busy}" in p.stderr and "--dashboard-port" in p.stderr
    assert not leftovers(tmp_path)


def test_a_missing_checkpoint_of_its_own_says_what_to_do(tmp_path):
    """A checkpoint the operator named (SEEDGRID_MODEL_PATHS) is never replaced by a dev one."""
    env = {**up_env(tmp_path), "SEEDGRID_MODEL_PATHS": json.dumps({"RealisticVision": str(tmp_path / "nope")})}
    p = subprocess.run([SEEDGRID, "up", "--miners", "RealisticVision", "--cheaters", ""], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "SEEDGRID_MODEL_PATHS" in p.stderr and str(tmp_path / "nope") in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not leftovers(tmp_path)


def test_text_and_external_miners_run_with_their_servers_and_earn_their_shares(tmp_path):
    """The default network's text miner and a GoJourney miner, with an image miner: the text server
    and the validator's, and the fake provider, start with them; text answers are judged by a
    prefill, GoJourney's against the provider; each type's share is set."""
    ports = [free_port() for _ in range(4)]
    p = subprocess.run([SEEDGRID, "up", "--epochs", "1", "--miners", "RealisticVision,Gemma7b,GoJourney", "--cheaters", "",
                        "--dashboard-port", str(ports[0]), "--flower-port", str(ports[1]), "--gateway-port",
                        str(ports[2]), "--miner-port", str(ports[3])], env=up_env(tmp_path / "state"),
                       capture_output=True, text=True, timeout=400)
    assert p.returncode == 0 and p.stdout.rstrip().endswith("done"), (p.stdout + p.stderr)[-3000:]
    board = json.loads(subprocess.run([SEEDGRID, "validator", "status", "--json"], capture_output=True, text=True,
                                      env=up_env(tmp_path / "state")).stdout)
    for model in ("Gemma7b", "GoJourney"):  # judged by a prefill, and against the fake provider's task
        row = next(r for r in board if r["model"] == model)
        assert row["score"] > 0 and row["weight"] > 0, board
    assert not leftovers(tmp_path / "state"), "every child process stopped, the text servers and the provider too"
