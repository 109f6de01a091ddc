"""The `seedgrid` command: set-up, models, generation, GPU workers, Redis (app/cli/network.py has the rest)."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import click

from app import __version__
from app.backends.registry import checkpoint_path
from app.cli.conditioning import conditioning_fields, conditioning_options
from app.generation.limits import broker_visibility_timeout, time_limits
from app.protocol.errors import CheckpointError, InvalidRequest


def _settings():
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from app.config import get_settings
    from app.explain import explain

    try:
        return get_settings()
    except (ValidationError, SettingsError) as exc:
        raise click.ClickException(explain(exc)) from None


def require_port(host: str, port: int, flag: str = "--port") -> None:
    """A service's port, checked before it starts (and before a miner announces it): one line when it is taken."""
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise click.ClickException(f"port {port} on {host} cannot be used ({exc.strerror or exc}); stop what "
                                       f"holds it, or choose another with {flag}") from None


def _fail(exc: Exception, as_json: bool) -> None:
    if as_json:
        body = exc.to_dict() if isinstance(exc, InvalidRequest) else {"error": type(exc).__name__, "detail": str(exc)}
        click.echo(json.dumps(body))
        sys.exit(2 if isinstance(exc, InvalidRequest) else 1)
    raise click.ClickException(str(exc))


class _Seedgrid(click.Group):
    """Known failures (settings, Redis, database, checkpoints, files) print one line, not a traceback
    (with -v, the traceback too)."""

    def invoke(self, ctx):
        from app.explain import explain

        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            line = explain(exc)
            if line is None:
                raise
            if ctx.params.get("verbose"):
                import traceback

                traceback.print_exc()
            raise click.ClickException(line) from None


@click.group(cls=_Seedgrid)
@click.version_option(__version__, prog_name="seedgrid")
@click.option("-v", "--verbose", is_flag=True, help="log at DEBUG level")
def main(verbose: bool) -> None:
    """Seedgrid: a verified generation grid on Celery."""
    if verbose:  # the worker processes it starts show a known failure's traceback too
        from app.explain import VERBOSE_ENV

        os.environ[VERBOSE_ENV] = "1"
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
    from app.settings import redact_url

    settings = _settings()
    migrations.upgrade(settings.sqlalchemy_url, revision)
    click.echo(f"database at {migrations.current(settings.sqlalchemy_url)} ({redact_url(settings.sqlalchemy_url)})")


@db.command("current")
def db_current() -> None:
    """Print the database's migration revision."""
    from app import migrations

    click.echo(migrations.current(_settings().sqlalchemy_url) or "none (run `seedgrid db upgrade`)")


# --- models ---------------------------------------------------------------------------
@main.group()
def models() -> None:
    """The model catalogue and dev checkpoints."""


@models.command("list")
def models_list() -> None:
    """Print the catalogue."""
    from app.backends.registry import SERVED_MODELS
    from app.protocol.catalogue import CATALOGUE

    settings = _settings()
    click.echo(f"{'model':16} {'arch':9} {'share':>5} {'timeout':>7}  defaults / checkpoint")
    for spec in CATALOGUE.values():
        line = f"{spec.name:16} {spec.architecture.value:9} {spec.incentive_share:5.2f} {spec.timeout_s:6.0f}s  "
        if spec.name in SERVED_MODELS:
            p = spec.default_params()
            line += f"{p['steps']} steps {p['width']}x{p['height']} cfg {p['guidance']} {p['scheduler']}"
            if spec.is_video:
                line += f" {p['num_frames']} frames @ {p['fps']} fps"
            line += f"  [{checkpoint_path(settings, spec.name)}]"
        else:
            line += f"(no backend here for {spec.architecture.value} {spec.pipeline.value})"
        click.echo(line)


@models.command("build-dev")
@click.option("--model", "names", multiple=True,
              help="only these model types (default: every served type and the dev text models)")
@click.option("--force", is_flag=True, help="rebuild even when a complete checkpoint is there")
@click.option("--random", "random_", is_flag=True,
              help="seeded random weights instead of the shipped trained ones (architecture-only tests)")
def models_build_dev(names: tuple[str, ...], force: bool, random_: bool) -> None:
    """Build tiny dev checkpoints (real architectures; the shipped trained weights, or random ones)."""
    from app.backends.diffusers.devbuild import weights_kind
    from app.backends.registry import (
        SERVED_MODELS,
        build_dev_checkpoint,
        dev_checkpoint_path,
        dev_controlnet_path,
        served_spec,
    )
    from app.llm.devbuild import build_dev_text, dev_text_folder
    from app.protocol.catalogue import CATALOGUE, Architecture

    settings = _settings()
    text = [n for n in names if n in CATALOGUE and CATALOGUE[n].architecture is Architecture.TEXT]
    if text or not names:  # the text models ship trained: copied, whatever --random says
        for name, copied in build_dev_text(settings, force=force).items():
            click.echo(f"{name:16} {'built' if copied else 'up to date':10} {'trained':8} "
                       f"{dev_text_folder(settings, name)}")
    from app.progress import steps

    todo = [n for n in names if n not in text] if names else list(SERVED_MODELS)
    done = []
    with steps(len(todo), f"{len(todo)} dev checkpoints") as step:
        for name in todo:
            step(f"building {name}")
            try:
                built = build_dev_checkpoint(settings, name, force=force, random=random_)
            except InvalidRequest as exc:
                raise click.ClickException(str(exc)) from None
            done.append((name, built))
    for name, built in done:
        spec = served_spec(name)
        kind = weights_kind(spec, random_).split(":")[0]
        click.echo(f"{name:16} {'built' if built else 'up to date':10} {kind:8} {dev_checkpoint_path(settings, name)}")
        if spec.control_types:
            click.echo(f"{'':16} {'':10} {'':8} + ControlNets {', '.join(spec.control_types)} in "
                       f"{dev_controlnet_path(settings, name, spec.control_types[0]).parent}")


@models.command("train-dev")
@click.option("--vae-steps", type=click.IntRange(1, 100_000), default=None, help="VAE training steps")
@click.option("--steps", type=click.IntRange(1, 100_000), default=None,
              help="denoiser steps per image model type (video trains Budget.video_steps)")
@click.option("--pictures", type=click.IntRange(16, 1_000_000), default=None, help="training pictures per model type")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="where the weights go (default: app/backends/diffusers/devweights, which build-dev reads)")
@click.option("--keep-vae", is_flag=True, help="train the denoisers against the VAE already there")
@click.option("--models", "names", default=None, help="comma-separated model types (default: every diffusers type)")
@click.option("--device", default="cpu", show_default=True,
              help="cpu, or cuda (faster; equivalent weights, not bit-identical ones)")
def models_train_dev(vae_steps: int | None, steps: int | None, pictures: int | None, out: Path | None,
                     keep_vae: bool, names: str | None, device: str) -> None:
    """Train the dev checkpoints on the procedural world (seeded; about 75 minutes on 2 CPU cores).

    `seedgrid models build-dev` then builds checkpoints from the weights it writes.
    """
    import dataclasses

    from app.backends.diffusers.devbuild import train_dev_weights, training_steps
    from app.backends.diffusers.devtrain import WEIGHTS, Budget
    from app.backends.diffusers.loading import quiet_libraries
    from app.backends.registry import SERVED_MODELS, served_spec
    from app.progress import steps as progress_steps
    from app.validator.prompts import synthetic_prompt

    _settings()  # every command refuses bad settings first, though training reads none
    quiet_libraries()
    changes = {k: v for k, v in {"vae_steps": vae_steps, "denoiser_steps": steps, "pictures": pictures}.items() if v}
    budget = dataclasses.replace(Budget(), **changes)
    try:
        specs = [served_spec(name.strip()) for name in (names.split(",") if names else SERVED_MODELS) if name.strip()]
    except InvalidRequest as exc:
        raise click.BadParameter(str(exc), param_hint="--models") from None
    if keep_vae and not ((out or WEIGHTS) / "vae.safetensors").exists():
        raise click.BadParameter(f"there is no VAE in {out or WEIGHTS} to keep", param_hint="--keep-vae")
    if device != "cpu":
        import torch

        if not device.startswith("cuda") or not torch.cuda.is_available():
            raise click.BadParameter(f"{device!r} is not an available device here; use cpu", param_hint="--device")
    total = training_steps(specs, budget, keep_vae)
    with progress_steps(total, f"{total} training steps") as tick:
        train_dev_weights(specs, synthetic_prompt, budget, click.echo, out=out, keep_vae=keep_vae, device=device,
                          tick=tick)
    click.echo(f"weights written to {out or WEIGHTS}; `seedgrid models build-dev` rebuilds the checkpoints from them")


@models.command("export-single-file")
@click.option("--model", required=True, help="an SD1.5 model type")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
def models_export_single_file(model: str, out: Path) -> None:
    """Write an SD1.5 checkpoint folder as one original-format .safetensors file."""
    from app.backends.diffusers.singlefile import export_sd15
    from app.backends.registry import served_spec
    from app.protocol.catalogue import Architecture

    settings = _settings()
    try:
        spec = served_spec(model)
    except InvalidRequest as exc:
        raise click.BadParameter(exc.message, param_hint="--model") from None
    if spec.architecture is not Architecture.SD15:
        raise click.BadParameter(f"{model} is {spec.architecture.value}; only SD1.5 types export", param_hint="--model")
    folder = checkpoint_path(settings, model)
    if not folder.is_dir():
        fix = "correct its SEEDGRID_MODEL_PATHS entry" if spec.name in settings.model_paths \
            else "run `seedgrid models build-dev` first"
        raise click.ClickException(f"{folder} is not a checkpoint folder; {fix}")
    click.echo(export_sd15(folder, out))


# --- workers --------------------------------------------------------------------------
@main.group()
def worker() -> None:
    """Celery worker processes."""


def _validator_role(role: str, name: str, loglevel: str, model: str = "all") -> None:
    from workers.validator import main as validator_main

    sys.exit(validator_main([role, "--name", name, "--loglevel", loglevel, "--model", model]))


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
@conditioning_options
def generate(model, prompt, seed, negative_prompt, steps, guidance, width, height, scheduler, num_frames, fps,
             out, via_queue, timeout, as_json, **conditioned) -> None:
    """Generate one image or video, in this process or through a worker."""
    from app.protocol.request import parse_request

    params = {k: v for k, v in dict(steps=steps, guidance=guidance, width=width, height=height, scheduler=scheduler,
                                    num_frames=num_frames, fps=fps).items() if v is not None}
    raw = {"model": model, "prompt": prompt, "seed": seed, "negative_prompt": negative_prompt, "params": params,
           **conditioning_fields(**conditioned)}
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
        from app.storage import load

        out.write_bytes(load(settings, result["artifact_path"]))
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
    wait = timeout or time_limits(settings, request.model)[1]
    async_result = enqueue(request)
    try:
        return async_result.get(timeout=wait)
    except CeleryTimeout:
        async_result.revoke()
        # unsubscribe from its result now: left to the interpreter's shutdown, it prints a traceback
        async_result.backend.remove_pending_result(async_result)
        raise TimeoutError(
            f"no {request.model} worker answered within {wait:g} s; start one with "
            f"`seedgrid worker gpu --model {request.model}`"
        ) from None


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


# --- calibration ----------------------------------------------------------------------
@main.command()
@click.option("--models", default=None, help="comma-separated calibration rows: a model type (its default pipeline) "
              "or Model/pipeline, such as RealisticVision/img2img (default: every served one)")
@click.option("--challenges", type=click.IntRange(1, 10_000), default=24, show_default=True,
              help="challenges per model type, half at the local sizes and half at the catalogue defaults")
@click.option("--sizes", type=click.Choice(["both", "local", "default"]), default="both", show_default=True,
              help="challenge sizes: the local network's, the catalogue defaults, or half of each")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="where to write it (default: calibration.json in the state folder)")
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="keep each output and distance here as it is made; the same command again resumes a stopped run")
def calibrate(models: str | None, challenges: int, sizes: str, out: Path | None, work_dir: Path | None) -> None:
    """Measure honest and cheating distances on this machine and write a calibration file.

    Honest outputs come from separate processes with another thread count and other CPU
    ISAs; every cheat the verifier must catch is generated too. Point the validator at the
    file with SEEDGRID_CALIBRATION_FILE. This takes minutes per model type.
    """
    from app.backends.registry import SERVED_MODELS
    from app.testkit.calibration import calibrate as run
    from app.testkit.calibration import check_target, targets, write

    settings = _settings()
    names = [m.strip() for m in models.split(",") if m.strip()] if models else targets(SERVED_MODELS)
    served = targets(SERVED_MODELS)
    for name in names:
        try:
            if check_target(name) not in served:
                raise ValueError(f"{name!r} is not served here")
        except ValueError as exc:
            raise click.BadParameter(f"{exc}; choose from {', '.join(served)}", param_hint="--models") from None
    from app.progress import steps

    try:
        with steps(len(names) * challenges, f"{len(names) * challenges} challenges measured") as step:
            doc = run(names, challenges, settings, log=click.echo,
                      sizes=("local", "default") if sizes == "both" else (sizes,), work=work_dir, progress=step)
    except ValueError as exc:  # a work folder of another plan
        raise click.BadParameter(str(exc), param_hint="--work-dir") from None
    target = out or settings.state_path / "calibration.json"
    write(doc, target)
    low = [m for m, row in doc["models"].items() if row["margin"] < 10]
    click.echo(f"wrote {target}; use it with SEEDGRID_CALIBRATION_FILE={target}")
    if low:
        click.echo(f"warning: margin below x10 for {', '.join(low)}: those cheats sit close to honest drift here")


# --- demo -----------------------------------------------------------------------------
@main.command()
@click.option("--seed", type=int, default=20261123, show_default=True)
def demo(seed: int) -> None:
    """A quick check: generate with every served model type and reproduce in a second worker."""
    from app.demo import run_demo

    sys.exit(run_demo(_settings(), seed=seed))


@main.command("doctor")
@click.option("--only", default=None, help="comma-separated: broker, database, store, chain (default: all)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per check")
@click.option("--timeout", type=click.FloatRange(1, 120), default=15.0, show_default=True,
              help="seconds each check may take")
def doctor(only: str | None, as_json: bool, timeout: float) -> None:
    """Check, from this host, that the broker, the database, the artifact store and the chain answer
    with the configured settings; exit 1 naming each one that does not and what to set."""
    from app.doctor import CHECKS, run_checks

    names = [n.strip() for n in only.split(",") if n.strip()] if only else None
    unknown = sorted(set(names or []) - set(CHECKS))
    if unknown:
        raise click.BadParameter(f"unknown check {unknown[0]!r}; choose from {', '.join(CHECKS)}", param_hint="--only")
    checks = run_checks(_settings(), names, timeout)
    for c in checks:
        if as_json:
            click.echo(json.dumps({"check": c.name, "ok": c.ok, "detail": c.detail}))
        else:
            click.echo(f"{'ok    ' if c.ok else 'FAILED'} {c.name:<9} {c.detail}")
    if not all(c.ok for c in checks):
        sys.exit(1)


@main.command("settings")
def show_settings() -> None:
    """Print the effective settings (secrets hidden)."""
    from app.settings import redact_url

    s = _settings()
    data = json.loads(s.model_dump_json())
    for key in ("database_url", "redis_url"):
        if data.get(key):
            data[key] = redact_url(data[key])
    if data.get("s3_secret_access_key"):
        data["s3_secret_access_key"] = "***"
    data["effective"] = {"database": redact_url(s.sqlalchemy_url), "broker": redact_url(s.broker_url),
                         "visibility_timeout_s": broker_visibility_timeout(s)}
    click.echo(json.dumps(data, indent=2))
