"""`seedgrid gateway` (the organic job API and its keys) and `seedgrid submit` (a job from the terminal)."""

from __future__ import annotations

import json
import sys
import time
from functools import partial
from pathlib import Path

import click

from app.cli.conditioning import conditioning_fields, conditioning_options
from app.cli.core import _settings, main, require_port

DEFAULT_RATE = 60  # jobs a minute per key unless --rate says otherwise
DEFAULT_DAILY = 10_000  # jobs a UTC day per key unless --daily says otherwise


@main.group()
def gateway() -> None:
    """The validator's organic job API: serve it, and manage its API keys."""


@gateway.command("serve")
@click.option("--host", default=None, help="listen address (default: SEEDGRID_GATEWAY_HOST, 127.0.0.1)")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="port (default: SEEDGRID_GATEWAY_PORT, 8100)")
def gateway_serve(host: str | None, port: int | None) -> None:
    """Serve /v1/jobs, /v1/models and OpenAI's /v1/images/generations."""
    import redis as redis_lib
    import uvicorn

    from app.bootstrap import prepare_database, prepare_redis
    from app.db import session_scope
    from app.gateway.api import create_gateway_app
    from app.scoring.tiers import tier_table
    from app.tasks.gateway import enqueue

    settings = _settings()
    handle = prepare_redis(settings)
    prepare_database(settings)
    host, port = host or settings.gateway_host, port or settings.gateway_port
    require_port(host, port)
    app_ = create_gateway_app(settings=settings, sessions=partial(session_scope, settings.sqlalchemy_url),
                              redis_client=redis_lib.Redis.from_url(handle.url),
                              tiers=tier_table(settings.tier_table), enqueue=enqueue)
    click.echo(f"gateway on http://{host}:{port} (keys: `seedgrid gateway keys create --name NAME`)")
    uvicorn.run(app_, host=host, port=port, log_level="warning", access_log=False)


@gateway.group("keys")
def keys_group() -> None:
    """API keys: a key is printed once; only its hash is stored."""


@keys_group.command("create")
@click.option("--name", required=True, help="who or what the key is for (unique)")
@click.option("--rate", type=click.IntRange(1, 1_000_000), default=DEFAULT_RATE, show_default=True,
              help="jobs a minute")
@click.option("--daily", type=click.IntRange(1, 100_000_000), default=DEFAULT_DAILY, show_default=True,
              help="jobs a UTC day")
def keys_create(name: str, rate: int, daily: int) -> None:
    """Create a key and print it (once: it cannot be shown again)."""
    from app.bootstrap import prepare_database
    from app.db import session_scope
    from app.gateway.keys import ApiKeyError, create_key

    settings = _settings()
    prepare_database(settings)
    try:
        with session_scope(settings.sqlalchemy_url) as s:
            _, key = create_key(s, name=name, rate_per_minute=rate, daily_quota=daily)
    except ApiKeyError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(key)
    click.echo(f"key {name!r}: {rate} jobs a minute, {daily} a day. Keep it: only its hash is stored.", err=True)


@keys_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def keys_list(as_json: bool) -> None:
    """Every key: name, prefix, limits, created, revoked."""
    from sqlalchemy import select

    from app.bootstrap import prepare_database
    from app.db import session_scope
    from app.models import ApiKey

    settings = _settings()
    prepare_database(settings)
    with session_scope(settings.sqlalchemy_url) as s:
        rows = [{"name": k.name, "prefix": k.prefix, "rate_per_minute": k.rate_per_minute,
                 "daily_quota": k.daily_quota, "created_at": k.created_at.isoformat(),
                 "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None}
                for k in s.scalars(select(ApiKey).order_by(ApiKey.id))]
    if as_json:
        click.echo(json.dumps(rows))
        return
    click.echo(f"{'name':24} {'prefix':12} {'rate/min':>8} {'daily':>9}  state")
    for r in rows:
        state = f"revoked {r['revoked_at'][:19]}" if r["revoked_at"] else "live"
        click.echo(f"{r['name'][:24]:24} {r['prefix']:12} {r['rate_per_minute']:8d} {r['daily_quota']:9d}  {state}")


@keys_group.command("revoke")
@click.option("--name", required=True)
def keys_revoke(name: str) -> None:
    """Revoke a key: its calls get 401 (within SEEDGRID_GATEWAY_CACHE_S on a running gateway). Its jobs stay."""
    from app.bootstrap import prepare_database
    from app.db import session_scope
    from app.gateway.keys import ApiKeyError, revoke_key

    settings = _settings()
    prepare_database(settings)
    try:
        with session_scope(settings.sqlalchemy_url) as s:
            revoke_key(s, name)
    except ApiKeyError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"key {name!r} revoked; running gateways refuse it within {settings.gateway_cache_s:g} s")


@main.command("submit")
@click.option("--model", required=True, help="a model type (GET /v1/models lists them)")
@click.option("--prompt", required=True)
@click.option("--negative-prompt", default=None)
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=None, help="random when absent")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="steps=4, width=512, ... (repeat)")
@click.option("--wait/--no-wait", default=True, show_default=True, help="follow the job until it is done")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write the result here (default: <job id>.<png|mp4>)")
@click.option("--url", envvar="SEEDGRID_GATEWAY_URL", default=None,
              help="the gateway (default: SEEDGRID_GATEWAY_URL, or this machine's)")
@click.option("--key", envvar="SEEDGRID_API_KEY", default=None,
              help="the API key (default: SEEDGRID_API_KEY, or the local network's)")
@conditioning_options
def submit(model: str, prompt: str, negative_prompt: str | None, seed: int | None, params: tuple[str, ...],
           wait: bool, out: Path | None, url: str | None, key: str | None, **conditioned) -> None:
    """Submit one job to a gateway, follow it, and write its result."""
    from app.gateway.client import GatewayClient, GatewayError
    from app.models.gateway import FINISHED

    settings = _settings()
    url = url or f"http://127.0.0.1:{settings.gateway_port}"
    key = key or _local_key(settings)
    body: dict = {"model": model, "prompt": prompt, "params": _params(params), **conditioning_fields(**conditioned)}
    if negative_prompt is not None:
        body["negative_prompt"] = negative_prompt
    if seed is not None:
        body["seed"] = seed
    client = GatewayClient(url, key)
    try:
        job = client.submit(body)
        click.echo(f"job {job['id']} {job['status']}", err=True)
        if not wait:
            click.echo(json.dumps(job))
            return
        started = time.monotonic()
        for event in client.events(job["id"]):
            tries = ", ".join(f"uid {a['miner_uid']} {a['status']}" for a in event["attempts"]) or "no miner yet"
            click.echo(f"  {time.monotonic() - started:6.1f} s  {event['status']:9} {tries}", err=True)
            job = event
            if event["status"] in FINISHED:
                break
        if job["status"] != "done":
            raise click.ClickException(f"job {job['id']} {job['status']}: {job.get('error')}")
        data = client.result(job["id"])
    except GatewayError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot reach the gateway at {url} ({exc}); is `seedgrid up` running?") from None
    ext = "mp4" if job["result"]["media_type"] == "video/mp4" else "png"
    out = out or Path(f"{job['id']}.{ext}")
    out.write_bytes(data)
    click.echo(f"wrote {out} ({len(data):,} bytes, pixel sha256 {job['result']['pixel_sha256'][:16]}...)")
    sys.exit(0)


def _params(pairs: tuple[str, ...]) -> dict:
    out: dict = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint="--param")
        try:
            out[name] = json.loads(value)
        except ValueError:
            out[name] = value  # a scheduler name
    return out


def _local_key(settings) -> str:
    path = settings.state_path / "gateway-key"
    if not path.exists():
        raise click.ClickException("no API key: pass --key or set SEEDGRID_API_KEY (a local `seedgrid up` "
                                   f"writes one to {path})")
    return path.read_text().strip()
