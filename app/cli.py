"""The `seedgrid` command."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from app import __version__
from app.generation.errors import CheckpointError, InvalidRequest


def _settings():
    from pydantic import ValidationError

    from app.settings import get_settings

    try:
        return get_settings()
    except ValidationError as exc:
        lines = [f"  SEEDGRID_{'_'.join(str(p) for p in e['loc']).upper() or '*'}: {e['msg']}" for e in exc.errors()]
        raise click.ClickException("invalid settings:\n" + "\n".join(lines)) from None


def _fail(exc: Exception, as_json: bool) -> None:
    if as_json:
        body = exc.to_dict() if isinstance(exc, InvalidRequest) else {"error": type(exc).__name__, "detail": str(exc)}
        click.echo(json.dumps(body))
        sys.exit(2 if isinstance(exc, InvalidRequest) else 1)
    raise click.ClickException(str(exc))


@click.group()
@click.version_option(__version__, prog_name="seedgrid")
@click.option("-v", "--verbose", is_flag=True, help="log at DEBUG level")
def main(verbose: bool) -> None:
    """Seedgrid: a verified generation grid on Celery."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# --- db -------------------------------------------------------------------------------
@main.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION."""
    from app import migrations

    settings = _settings()
    migrations.upgrade(settings.sqlalchemy_url, revision)
    click.echo(f"database at {migrations.current(settings.sqlalchemy_url)} ({_safe_url(settings.sqlalchemy_url)})")


@db.command("current")
def db_current() -> None:
    """Print the database's migration revision."""
    from app import migrations

    click.echo(migrations.current(_settings().sqlalchemy_url) or "none (run `seedgrid db upgrade`)")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# --- models ---------------------------------------------------------------------------
@main.group()
def models() -> None:
    """The model catalogue and dev checkpoints."""


@models.command("list")
def models_list() -> None:
    """Print the catalogue."""
    from app.generation.catalogue import CATALOGUE

    settings = _settings()
    click.echo(f"{'model':16} {'arch':9} {'share':>5} {'timeout':>7}  defaults / checkpoint")
    for spec in CATALOGUE.values():
        line = f"{spec.name:16} {spec.architecture.value:9} {spec.incentive_share:5.2f} {spec.timeout_s:6.0f}s  "
        if spec.is_diffusion:
            p = spec.default_params()
            line += f"{p['steps']} steps {p['width']}x{p['height']} cfg {p['guidance']} {p['scheduler']}"
            if spec.is_video:
                line += f" {p['num_frames']} frames @ {p['fps']} fps"
            line += f"  [{settings.checkpoint_path(spec.name)}]"
        else:
            line += "(not served by the diffusion engine)"
        click.echo(line)


@models.command("build-dev")
@click.option("--model", "names", multiple=True, help="only these model types (default: every diffusion type)")
@click.option("--force", is_flag=True, help="rebuild even when a complete checkpoint is there")
def models_build_dev(names: tuple[str, ...], force: bool) -> None:
    """Build tiny dev checkpoints (real architectures, seeded random weights)."""
    from app.generation.catalogue import DIFFUSION_MODELS, get_diffusion_spec
    from app.generation.devbuild import build_dev_checkpoint
    from app.generation.loading import _quiet_libraries

    settings = _settings()
    _quiet_libraries()
    for name in names or DIFFUSION_MODELS:
        try:
            spec = get_diffusion_spec(name)
        except InvalidRequest as exc:
            raise click.ClickException(str(exc)) from None
        folder = settings.dev_checkpoints_dir / spec.dev_checkpoint
        built = build_dev_checkpoint(spec, folder, force=force)
        click.echo(f"{spec.name:16} {'built' if built else 'up to date':10} {folder}")


@models.command("export-single-file")
@click.option("--model", required=True, help="an SD1.5 model type")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
def models_export_single_file(model: str, out: Path) -> None:
    """Write an SD1.5 checkpoint folder as one original-format .safetensors file."""
    from app.generation.catalogue import Architecture, get_diffusion_spec
    from app.generation.singlefile import export_sd15

    settings = _settings()
    try:
        spec = get_diffusion_spec(model)
    except InvalidRequest as exc:
        raise click.BadParameter(exc.message, param_hint="--model") from None
    if spec.architecture is not Architecture.SD15:
        raise click.BadParameter(f"{model} is {spec.architecture.value}; only SD1.5 types export", param_hint="--model")
    folder = settings.checkpoint_path(model)
    if not folder.is_dir():
        raise click.ClickException(f"{folder} is not a checkpoint folder; run `seedgrid models build-dev` first")
    click.echo(export_sd15(folder, out))


# --- workers --------------------------------------------------------------------------
@main.group()
def worker() -> None:
    """Celery worker processes."""


def _validator_role(role: str, name: str, loglevel: str, model: str = "all") -> None:
    from workers.validator import main as validator_main

    sys.exit(validator_main([role, "--name", name, "--loglevel", loglevel, "--model", model]))


@worker.command("io")
@click.option("--name", default="validator", show_default=True, help="node name prefix")
@click.option("--loglevel", default="INFO", show_default=True)
def worker_io(name: str, loglevel: str) -> None:
    """The validator's I/O worker: miner queries and syncs, many at once (threads)."""
    _validator_role("io", name, loglevel)


@worker.command("default")
@click.option("--name", default="validator", show_default=True, help="node name prefix")
@click.option("--loglevel", default="INFO", show_default=True)
def worker_default(name: str, loglevel: str) -> None:
    """The validator's default worker: rounds, epoch ticks, weights, pruning."""
    _validator_role("default", name, loglevel)


@main.command("beat")
@click.option("--name", default="validator", show_default=True)
@click.option("--loglevel", default="INFO", show_default=True)
def beat(name: str, loglevel: str) -> None:
    """Celery beat with the schedule in beat_schedule.py."""
    _validator_role("beat", name, loglevel)


@worker.command("gpu")
@click.option("--model", default=None, help="model type, comma-separated list, or 'all' (required for miners)")
@click.option("--role", type=click.Choice(["miner", "validator"]), default="miner", show_default=True,
              help="miner: generate.<MODEL> queues; validator: reproduction and verification")
@click.option("--replicas", default=1, show_default=True, type=click.IntRange(1, 64),
              help="worker processes; each loads its pipeline once")
@click.option("--gpus", default=None, help="GPU ids for round-robin placement (default: all visible)")
@click.option("--name", default=None, help="node name prefix (default gpuN.MODEL)")
@click.option("--loglevel", default="INFO", show_default=True)
def worker_gpu(model: str | None, role: str, replicas: int, gpus: str | None, name: str | None,
               loglevel: str) -> None:
    """Start GPU worker process(es): a miner's generate.<MODEL> queues, or the validator's GPU queue."""
    from workers.gpu import parse_models
    from workers.supervisor import detect_gpus, gpu_replicas, supervise

    if role == "validator":
        _validator_role("gpu", name or "validator", loglevel, model or "all")
    if not model:
        raise click.BadParameter("a miner's GPU worker needs --model", param_hint="--model")
    try:
        parse_models(model)
    except InvalidRequest as exc:
        raise click.BadParameter(exc.message, param_hint="--model") from None
    logging.getLogger("seedgrid.supervisor").setLevel(loglevel)
    gpu_ids = [g.strip() for g in gpus.split(",") if g.strip()] if gpus else detect_gpus()
    if replicas == 1 and not gpus:
        from workers.gpu import main as gpu_main

        argv = ["--model", model, "--loglevel", loglevel] + (["--name", name] if name else [])
        sys.exit(gpu_main(argv))
    sys.exit(supervise(gpu_replicas(model, replicas, gpu_ids, name, loglevel)))


# --- generate -------------------------------------------------------------------------
@main.command()
@click.option("--model", required=True, help="model type (see `seedgrid models list`)")
@click.option("--prompt", required=True)
@click.option("--seed", required=True, type=int)
@click.option("--negative-prompt", default=None)
@click.option("--steps", type=int, default=None)
@click.option("--guidance", type=float, default=None)
@click.option("--width", type=int, default=None)
@click.option("--height", type=int, default=None)
@click.option("--scheduler", default=None)
@click.option("--frames", "num_frames", type=int, default=None, help="video models: frame count")
@click.option("--fps", type=int, default=None, help="video models: frames per second")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write the image/video here")
@click.option("--via-queue", is_flag=True, help="send to a GPU worker through the broker instead of running here")
@click.option("--timeout", type=float, default=None, help="seconds to wait for a worker (default: the model's)")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def generate(model, prompt, seed, negative_prompt, steps, guidance, width, height, scheduler, num_frames, fps,
             out, via_queue, timeout, as_json) -> None:
    """Generate one image or video, in this process or through a worker."""
    from app.generation.request import parse_request

    params = {k: v for k, v in dict(steps=steps, guidance=guidance, width=width, height=height, scheduler=scheduler,
                                    num_frames=num_frames, fps=fps).items() if v is not None}
    raw = {"model": model, "prompt": prompt, "seed": seed, "negative_prompt": negative_prompt, "params": params}
    settings = _settings()
    try:
        request = parse_request(raw)
        if via_queue:
            result = _generate_via_queue(request, settings, timeout)
        else:
            from app.bootstrap import prepare_database
            from app.generation.service import generate_and_record

            prepare_database(settings)
            result = generate_and_record(request.to_dict(), settings=settings)
    except (InvalidRequest, CheckpointError, TimeoutError, RuntimeError) as exc:
        _fail(exc, as_json)
        return
    if out:
        from app.generation.artifacts import load

        out.write_bytes(load(Path(result["artifact_path"])))
        result["out"] = str(out)
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
    else:
        t = result["timings"]
        click.echo(f"{result['model']}  {result['media_type']}  {t['generate_ms']:.0f} ms  "
                   f"pixel_sha256 {result['pixel_sha256']}\n  {result.get('out') or result['artifact_path']}")


def _generate_via_queue(request, settings, timeout: float | None) -> dict:
    from celery.exceptions import TimeoutError as CeleryTimeout

    from app.bootstrap import prepare_redis
    from app.tasks.generation import enqueue

    prepare_redis(settings)
    wait = timeout or settings.time_limits(request.model)[1]
    async_result = enqueue(request)
    try:
        return async_result.get(timeout=wait)
    except CeleryTimeout:
        async_result.revoke()
        raise TimeoutError(
            f"no {request.model} worker answered within {wait:g} s; start one with "
            f"`seedgrid worker gpu --model {request.model}`"
        ) from None


# --- wallet and chain -------------------------------------------------------------------
@main.group()
def wallet() -> None:
    """Wallets (bittensor's keyfile layout), created offline."""


@wallet.command("create")
@click.option("--name", required=True, help="wallet (coldkey) name")
@click.option("--hotkey", required=True, help="hotkey name")
def wallet_create(name: str, hotkey: str) -> None:
    """Create a wallet's coldkey (if missing) and a hotkey, unencrypted: for local networks and tests."""
    from app.chain.base import ChainError
    from app.chain.wallets import addresses, create_wallet

    settings = _settings()
    try:
        w, created = create_wallet(settings.wallets_dir, name, hotkey)
    except ChainError as exc:
        raise click.ClickException(str(exc)) from None
    hot, cold = addresses(w)
    click.echo(f"{'created' if created else 'exists '} {name}/{hotkey}  hotkey {hot}  coldkey {cold}  ({settings.wallets_dir})")


def _local_chain(hotkey: str | None = None):
    from app.bootstrap import prepare_database
    from app.chain.local import LocalChain

    settings = _settings()
    if settings.chain != "local":
        raise click.ClickException(f"`seedgrid chain` administers the local chain; SEEDGRID_CHAIN is {settings.chain!r}")
    prepare_database(settings)
    return LocalChain(settings.sqlalchemy_url, settings.netuid, hotkey=hotkey)


def _wallet_addresses(name: str, hotkey: str) -> tuple[str, str]:
    from app.chain.base import ChainError
    from app.chain.wallets import addresses, load_wallet

    try:
        return addresses(load_wallet(_settings().wallets_dir, name, hotkey))
    except ChainError as exc:
        raise click.ClickException(str(exc)) from None


@main.group()
def chain() -> None:
    """The local chain (SEEDGRID_CHAIN=local): subnet, registration, stake, blocks."""


@chain.command("init")
@click.option("--block-time", type=click.FloatRange(min=0.001, max=3600), default=None,
              help="seconds per block (default SEEDGRID_LOCAL_BLOCK_TIME)")
def chain_init(block_time: float | None) -> None:
    """Create the local subnet (keeps an existing one and its clock)."""
    c = _local_chain()
    bt_ = block_time or _settings().local_block_time
    created = c.init(block_time=bt_)
    click.echo(f"subnet {c.netuid} {'created' if created else 'exists'}; block {c.block()} every {c.block_time():g} s")


@chain.command("register")
@click.option("--wallet", "wallet_name", required=True)
@click.option("--hotkey", required=True)
def chain_register(wallet_name: str, hotkey: str) -> None:
    """Register a wallet's hotkey on the local subnet; prints its uid."""
    from app.chain.base import ChainError

    hot, cold = _wallet_addresses(wallet_name, hotkey)
    try:
        uid = _local_chain().register(hot, cold)
    except ChainError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"uid {uid}  {hot}")


@chain.command("stake")
@click.option("--wallet", "wallet_name", required=True)
@click.option("--hotkey", required=True)
@click.option("--amount", type=click.FloatRange(min=0), required=True, help="the hotkey's stake, in TAO")
def chain_stake(wallet_name: str, hotkey: str, amount: float) -> None:
    """Set a registered hotkey's stake."""
    from app.chain.base import ChainError

    hot, _ = _wallet_addresses(wallet_name, hotkey)
    try:
        _local_chain().set_stake(hot, amount)
    except ChainError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{hot} stake {amount:,.2f}")


@chain.command("show")
@click.option("--json", "as_json", is_flag=True)
def chain_show(as_json: bool) -> None:
    """The metagraph: uid, hotkey, stake, permit, axon, last update."""
    from app.chain.base import ChainError

    c = _local_chain()
    try:
        neurons, block = c.metagraph(), c.block()
    except ChainError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"block": block, "netuid": c.netuid, "neurons": [n.to_dict() for n in neurons]}))
        return
    click.echo(f"subnet {c.netuid} at block {block}: {len(neurons)} neurons")
    for n in neurons:
        click.echo(f"{n.uid:4d} {n.hotkey} stake {n.stake:>14,.2f} {'V' if n.validator_permit else ' '} "
                   f"{n.axon or '-':21} updated {n.last_update}")


@chain.command("block")
def chain_block() -> None:
    """The current block."""
    from app.chain.base import ChainError

    try:
        click.echo(_local_chain().block())
    except ChainError as exc:
        raise click.ClickException(str(exc)) from None


# --- miner ----------------------------------------------------------------------------
@main.group()
def miner() -> None:
    """The miner's signed HTTP API."""


@miner.command("serve")
@click.option("--model", required=True, help="the model type this miner serves")
@click.option("--wallet", "wallet_name", required=True)
@click.option("--hotkey", required=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8091, show_default=True)
@click.option("--announce/--no-announce", default=True, show_default=True,
              help="publish host:port on the chain (serve_axon)")
@click.option("--external-host", default=None, help="address validators use (default: --host)")
@click.option("--cheat", default=None, metavar="STRATEGY",
              help="TEST MODE: answer dishonestly (wrong_seed, fewer_steps, other_scheduler, half_resolution, "
                   "other_checkpoint, blank, error_text, replay, copy)")
def miner_serve(model: str, wallet_name: str, hotkey: str, host: str, port: int, announce: bool,
                external_host: str | None, cheat: str | None) -> None:
    """Serve POST /v1/generate, GET /v1/info and GET /healthz for MODEL."""
    import uvicorn

    from app.bootstrap import prepare_database, prepare_redis
    from app.chain import open_chain
    from app.chain.base import ChainError
    from app.chain.wallets import load_wallet
    from app.generation.catalogue import get_diffusion_spec
    from app.net.miner_api import create_miner_app

    settings = _settings()
    try:
        spec = get_diffusion_spec(model)
    except InvalidRequest as exc:
        raise click.BadParameter(exc.message, param_hint="--model") from None
    if cheat:
        from app.net.cheats import Cheat

        if cheat not in Cheat.strategies:
            raise click.BadParameter(f"unknown strategy {cheat!r}; choose one of {', '.join(Cheat.strategies)}",
                                     param_hint="--cheat")
    try:
        w = load_wallet(settings.wallets_dir, wallet_name, hotkey)
        handle = prepare_redis(settings)
        prepare_database(settings)
        c = open_chain(settings, wallet=w)
        if announce:
            c.serve_axon(external_host or host, port)
    except ChainError as exc:
        raise click.ClickException(str(exc)) from None
    import redis as redis_lib

    cheater = None
    if cheat:
        from app.net.cheats import Cheat

        try:
            cheater = Cheat(cheat, spec.name, database_url=settings.sqlalchemy_url)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--cheat") from None
    app_ = create_miner_app(settings=settings, model=spec.name, hotkey=w.hotkey.ss58_address, chain=c,
                            redis_client=redis_lib.Redis.from_url(handle.url), cheat=cheater)
    click.echo(f"miner {w.hotkey.ss58_address} serving {spec.name} on http://{host}:{port}"
               + (f" (TEST MODE: cheating with {cheat})" if cheat else ""))
    uvicorn.run(app_, host=host, port=port, log_level="warning", access_log=False)


# --- validator ------------------------------------------------------------------------
@main.group()
def validator() -> None:
    """The validator: rounds, verification, tiers, weights."""


@validator.command("run")
@click.option("--name", default="validator", show_default=True, help="node name prefix")
@click.option("--loglevel", default="INFO", show_default=True)
def validator_run(name: str, loglevel: str) -> None:
    """Start the validator's I/O, default and GPU workers and beat, supervised."""
    from app.bootstrap import prepare_database, prepare_redis
    from app.chain.base import ChainError
    from app.chain.wallets import load_wallet
    from workers.supervisor import supervise, validator_processes

    settings = _settings()
    try:
        load_wallet(settings.wallets_dir, settings.validator_wallet, settings.validator_hotkey)
        prepare_redis(settings)
        prepare_database(settings)
    except ChainError as exc:
        raise click.ClickException(f"{exc} (SEEDGRID_VALIDATOR_WALLET / SEEDGRID_VALIDATOR_HOTKEY)") from None
    logging.getLogger("seedgrid.supervisor").setLevel(loglevel)
    sys.exit(supervise(validator_processes(name, loglevel)))


@validator.command("dashboard")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
def validator_dashboard(host: str, port: int) -> None:
    """Serve the dashboard (leaderboard, gallery, tiers over epochs, weights) and its JSON API."""
    import uvicorn

    from app.bootstrap import prepare_database
    from app.chain import open_chain
    from app.net.dashboard import create_dashboard_app

    settings = _settings()
    prepare_database(settings)
    click.echo(f"dashboard on http://{host}:{port}")
    uvicorn.run(create_dashboard_app(settings, open_chain(settings)), host=host, port=port, log_level="warning",
                access_log=False)


@validator.command("status")
@click.option("--json", "as_json", is_flag=True)
def validator_status(as_json: bool) -> None:
    """The leaderboard: uid, model, tier, rates, score, weight."""
    from app.bootstrap import prepare_database
    from app.validator.status import leaderboard

    settings = _settings()
    prepare_database(settings)
    rows = leaderboard(settings)
    if as_json:
        click.echo(json.dumps(rows))
        return
    click.echo(f"{'uid':>4} {'model':16} {'tier':12} {'req':>7} {'valid':>7} {'score':>8} {'weight':>8}  hotkey")
    for r in rows:
        rate = lambda v: "   -   " if v is None else f"{v:7.1%}"  # noqa: E731
        click.echo(f"{r['uid']:4d} {r['model'] or '-':16} {r['tier']:12} {rate(r['request_rate'])} "
                   f"{rate(r['validation_rate'])} {r['score']:8.4f} {r['weight']:8.4f}  {r['hotkey']}")


# --- redis ----------------------------------------------------------------------------
@main.group()
def redis() -> None:
    """The embedded Redis (used when SEEDGRID_REDIS_URL is unset)."""


@redis.command("start")
def redis_start() -> None:
    from app.redis_server import ensure_redis

    handle = ensure_redis(_settings())
    click.echo(f"{'started' if handle.started_here else 'already running'}: {handle.url}")


@redis.command("stop")
def redis_stop() -> None:
    from app.redis_server import stop_embedded

    settings = _settings()
    stopped = stop_embedded(settings.state_path / "redis" / "redis.pid")
    click.echo("stopped" if stopped else "not running")


# --- up -------------------------------------------------------------------------------
@main.command()
@click.option("--miners", default="RealisticVision,RealitiesEdgeXL,TextToVideo", show_default=True,
              help="honest miners: one per model type listed (comma-separated; repeat a type for two)")
@click.option("--cheaters", default="wrong_seed", show_default=True,
              help="cheating RealisticVision miners, one per strategy listed ('' for none)")
@click.option("--epochs", type=int, default=None, help="stop after this many tier rollovers, with a summary")
@click.option("--duration", type=float, default=None, help="stop after this many seconds")
@click.option("--block-time", type=click.FloatRange(min=0.01, max=12), default=0.1, show_default=True,
              help="seconds per block of the local chain (0.1: an epoch of 360 blocks in 36 s)")
@click.option("--dashboard-port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--flower-port", type=click.IntRange(1, 65535), default=5555, show_default=True)
@click.option("--miner-port", type=click.IntRange(1, 65535), default=8091, show_default=True,
              help="first port for miner APIs")
@click.option("--wandb", "use_wandb", is_flag=True, help="log rounds and the leaderboard to Weights & Biases")
def up(miners, cheaters, epochs, duration, block_time, dashboard_port, flower_port, miner_port, use_wandb) -> None:
    """Run a whole local network: chain, validator, miners, a cheater, Flower, the dashboard."""
    from rich.console import Console

    from app.local_network import Plan, UpError, run

    settings = _settings()
    if settings.chain != "local":
        raise click.ClickException(f"`seedgrid up` runs the local chain; SEEDGRID_CHAIN is {settings.chain!r}")
    plan = Plan(miners=[m.strip() for m in miners.split(",") if m.strip()],
                cheaters=[c.strip() for c in cheaters.split(",") if c.strip()], block_time=block_time,
                dashboard_port=dashboard_port, flower_port=flower_port, miner_port=miner_port, epochs=epochs,
                duration=duration, wandb=use_wandb)
    try:
        console = Console()
        code = run(settings, plan, console if console.is_terminal else Console(width=140))
    except (UpError, CheckpointError) as exc:
        raise click.ClickException(str(exc)) from None
    except InvalidRequest as exc:
        raise click.BadParameter(exc.message, param_hint="--miners") from None
    sys.exit(code)


# --- demo -----------------------------------------------------------------------------
@main.command()
@click.option("--seed", type=int, default=20261123, show_default=True)
def demo(seed: int) -> None:
    """The main job for now: generate with every diffusion type and reproduce in a second worker."""
    from app.demo import run_demo

    sys.exit(run_demo(_settings(), seed=seed))


@main.command("settings")
def show_settings() -> None:
    """Print the effective settings (secrets hidden)."""
    s = _settings()
    data = json.loads(s.model_dump_json())
    if data.get("database_url"):
        data["database_url"] = _safe_url(data["database_url"])
    data["effective"] = {"database": _safe_url(s.sqlalchemy_url), "broker": s.broker_url.split("@")[-1],
                         "visibility_timeout_s": s.broker_visibility_timeout}
    click.echo(json.dumps(data, indent=2))

