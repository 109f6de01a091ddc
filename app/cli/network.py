"""`seedgrid` commands of the network: wallets, the local chain, the miner API, the validator, `up`."""

from __future__ import annotations

import json
import logging
import sys

import click

from app.cli.core import _settings, _validator_role, main, require_port, worker
from app.protocol.catalogue import Payload, get_spec
from app.protocol.errors import CheckpointError, InvalidRequest


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
                   "other_checkpoint, blank, error_text, replay, copy; text types: other_model, truncated, "
                   "random_tokens, other_prompt, higher_temperature, fabricated_logprobs, empty, error; "
                   "external types: other_task, other_prompt, foreign_image, replay, failed_task; "
                   "the trajectory's openings: refuse_open, forged_opening)")
def miner_serve(model: str, wallet_name: str, hotkey: str, host: str, port: int, announce: bool,
                external_host: str | None, cheat: str | None) -> None:
    """Serve POST /v1/generate, GET /v1/info and GET /healthz for MODEL."""
    import uvicorn

    from app.backends.registry import served_spec
    from app.bootstrap import prepare_database, prepare_redis
    from app.chain import open_chain
    from app.chain.base import ChainError
    from app.chain.wallets import load_wallet
    from app.miner.api import create_miner_app

    settings = _settings()
    try:
        spec = get_spec(model)
        text = spec.payload is Payload.CHAT
        external = spec.payload is Payload.EXTERNAL_IMAGE
        if not text and not external:
            spec = served_spec(model)
    except InvalidRequest as exc:
        raise click.BadParameter(exc.message, param_hint="--model") from None
    if text and not settings.llm_url:
        raise click.UsageError(f"{spec.name} is a text model type: set SEEDGRID_LLM_URL to the miner's "
                               f"OpenAI-compatible server (for development: `seedgrid llm serve --model {spec.name}`)")
    if external and not (settings.gojourney_url and settings.gojourney_api_key):
        raise click.UsageError(f"{spec.name} is an external image type: set SEEDGRID_GOJOURNEY_URL to its provider "
                               "and SEEDGRID_GOJOURNEY_API_KEY to this miner's own key there")
    if cheat and (text or external):
        from app.testkit import external_cheats, text_cheats

        strategies = (text_cheats if text else external_cheats).STRATEGIES
        if cheat not in strategies:
            raise click.BadParameter(f"unknown {'text' if text else 'external'} strategy {cheat!r}; choose one of "
                                     f"{', '.join(strategies)}", param_hint="--cheat")
    elif cheat:
        from app.testkit.cheats import TRAJECTORY_CHEATS, Cheat

        if cheat not in Cheat.strategies + TRAJECTORY_CHEATS:
            raise click.BadParameter(f"unknown strategy {cheat!r}; choose one of "
                                     f"{', '.join(Cheat.strategies + TRAJECTORY_CHEATS)}", param_hint="--cheat")
    require_port(host, port)  # before its axon is announced at that port
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

    from app.miner.api import honest_answer

    redis_client = redis_lib.Redis.from_url(handle.url)
    answer = None if text or external else honest_answer  # forwarded to SEEDGRID_LLM_URL or the provider
    open_leaves = None
    if cheat and text:
        from app.testkit.text_cheats import text_cheat_answer

        answer = text_cheat_answer(cheat, settings, spec.name)
    elif cheat and external:
        from app.testkit.external_cheats import external_cheat_answer

        answer = external_cheat_answer(cheat, settings, spec.name)
    elif cheat and cheat in TRAJECTORY_CHEATS:  # an honest answer; the trajectory's openings are the cheat
        from app.testkit.cheats import trajectory_cheat_openings

        open_leaves = trajectory_cheat_openings(cheat)
    elif cheat:
        from app.testkit.cheats import Cheat, cheat_answer

        try:
            answer = cheat_answer(Cheat(cheat, spec.name, database_url=settings.sqlalchemy_url), redis_client)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--cheat") from None
    app_ = create_miner_app(settings=settings, model=spec.name, hotkey=w.hotkey.ss58_address, chain=c,
                            redis_client=redis_client, answer=answer, open_leaves=open_leaves)
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
    from app.validator.context import validator_wallet
    from workers.supervisor import supervise, validator_processes

    settings = _settings()
    validator_wallet(settings)
    prepare_redis(settings)
    prepare_database(settings)
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
    from app.validator.dashboard import create_dashboard_app

    settings = _settings()
    require_port(host, port)
    prepare_database(settings)
    click.echo(f"dashboard on http://{host}:{port}")
    uvicorn.run(create_dashboard_app(settings, open_chain(settings)), host=host, port=port, log_level="warning",
                access_log=False)


@validator.command("status")
@click.option("--json", "as_json", is_flag=True)
def validator_status(as_json: bool) -> None:
    """The leaderboard: uid, model, tier, rates (this interval's / the last completed one's), score, weight."""
    from app.bootstrap import prepare_database
    from app.validator.views import leaderboard, rates

    settings = _settings()
    prepare_database(settings)
    rows = leaderboard(settings)
    if as_json:
        click.echo(json.dumps(rows))
        return
    click.echo(f"{'uid':>4} {'model':16} {'tier':12} {'req now / last':>15} {'valid now / last':>16} "
               f"{'score':>8} {'weight':>8}  hotkey")
    for r in rows:
        req, valid = rates(r, lambda v: "-" if v is None else f"{v:.1%}")
        click.echo(f"{r['uid']:4d} {r['model'] or '-':16} {r['tier']:12} {req:>15} {valid:>16} "
                   f"{r['score']:8.4f} {r['weight']:8.4f}  {r['hotkey']}")


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



# --- up -------------------------------------------------------------------------------
@main.command()
@click.option("--miners", default="RealisticVision,RealitiesEdgeXL,TextToVideo,Gemma7b", show_default=True,
              help="honest miners: one per model type listed (comma-separated; repeat a type for two; GoJourney "
                   "runs against the fake provider unless SEEDGRID_GOJOURNEY_URL names a real one)")
@click.option("--cheaters", default="wrong_seed", show_default=True,
              help="cheating RealisticVision miners, one per strategy listed ('' for none)")
@click.option("--epochs", type=int, default=None, help="stop after this many tier rollovers, with a summary")
@click.option("--duration", type=float, default=None, help="stop after this many seconds")
@click.option("--block-time", type=click.FloatRange(min=0.01, max=12), default=0.1, show_default=True,
              help="seconds per block of the local chain (0.1: an epoch of 360 blocks in 36 s)")
@click.option("--dashboard-port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--flower-port", type=click.IntRange(1, 65535), default=5555, show_default=True)
@click.option("--gateway-port", type=click.IntRange(1, 65535), default=8100, show_default=True)
@click.option("--miner-port", type=click.IntRange(1, 65535), default=8091, show_default=True,
              help="first port for miner APIs")
@click.option("--wandb", "use_wandb", is_flag=True, help="log rounds and the leaderboard to Weights & Biases")
def up(miners, cheaters, epochs, duration, block_time, dashboard_port, flower_port, gateway_port, miner_port,
       use_wandb) -> None:
    """Run a whole local network: chain, validator, miners, a cheater, the gateway, Flower, the dashboard."""
    from rich.console import Console

    from app.local_network import Plan, UpError, run

    settings = _settings()
    if settings.chain != "local":
        raise click.ClickException(f"`seedgrid up` runs the local chain; SEEDGRID_CHAIN is {settings.chain!r}")
    plan = Plan(miners=[m.strip() for m in miners.split(",") if m.strip()],
                cheaters=[c.strip() for c in cheaters.split(",") if c.strip()], block_time=block_time,
                dashboard_port=dashboard_port, flower_port=flower_port, gateway_port=gateway_port,
                miner_port=miner_port, epochs=epochs, duration=duration, wandb=use_wandb)
    try:
        console = Console()
        code = run(settings, plan, console if console.is_terminal else Console(width=140))
    except (UpError, CheckpointError) as exc:
        raise click.ClickException(str(exc)) from None
    except InvalidRequest as exc:
        raise click.BadParameter(exc.message, param_hint="--miners") from None
    sys.exit(code)
