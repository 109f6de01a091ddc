"""`seedgrid llm`: the development text server (OpenAI-compatible) and its dev models."""

from __future__ import annotations

from pathlib import Path

import click

from app.cli.core import _settings, main, require_port

DEFAULT_PORT = 8300


@main.group()
def llm() -> None:
    """Text models: an OpenAI-compatible server for development, and its tiny dev models."""


def text_types() -> list[str]:
    from app.protocol.catalogue import CATALOGUE, Architecture

    return [n for n, s in CATALOGUE.items() if s.architecture is Architecture.TEXT]


@llm.command("serve")
@click.option("--model", "model", required=True, help=f"the text model type it serves under ({', '.join(text_types())})")
@click.option("--folder", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="a transformers causal LM folder with its tokenizer (default: SEEDGRID_MODEL_PATHS' entry for "
                   "the model type, else its dev model, built on first use)")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
def llm_serve(model: str, folder: Path | None, host: str, port: int) -> None:
    """Serve /v1/models, /v1/completions and /v1/chat/completions as vLLM does, on CPU."""
    import uvicorn

    from app.backends.diffusers.loading import quiet_libraries
    from app.llm.devbuild import build_dev_text, dev_text_folder
    from app.llm.model import LanguageModel
    from app.llm.server import create_llm_app

    if model not in text_types():
        raise click.BadParameter(f"{model!r} is not a text model type; text types: {', '.join(text_types())}",
                                 param_hint="--model")
    settings = _settings()
    quiet_libraries()
    if folder is None:
        folder = settings.model_paths.get(model)
    if folder is None:
        build_dev_text(settings)
        folder = dev_text_folder(settings, model)
    try:
        lm = LanguageModel(folder, threads=settings.threads, name=model)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    require_port(host, port)
    app_ = create_llm_app(lm, max_body_bytes=settings.max_body_bytes, body_timeout=settings.body_read_timeout)
    click.echo(f"text server for {model} ({folder}) on http://{host}:{port}/v1")
    uvicorn.run(app_, host=host, port=port, log_level="warning", access_log=False)


@llm.command("build-dev")
@click.option("--force", is_flag=True, help="copy again even when the copies are current")
def llm_build_dev(force: bool) -> None:
    """Copy the shipped dev text models into the state folder (`seedgrid models build-dev` does it too)."""
    from app.llm.devbuild import build_dev_text, dev_text_folder

    settings = _settings()
    try:
        built = build_dev_text(settings, force=force)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    for name, copied in built.items():
        click.echo(f"{name:16} {'built' if copied else 'up to date':10} {dev_text_folder(settings, name)}")


@llm.command("train-dev")
@click.option("--steps", type=click.IntRange(1, 100_000), default=None, help="training steps per model")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="where the folders go (default: app/llm/devweights, which build-dev copies)")
def llm_train_dev(steps: int | None, out: Path | None) -> None:
    """Train the tokenizer and the dev text models on the town world (seeded; a few minutes on 2 cores)."""
    import dataclasses

    from app.llm.devtrain import MODELS, Budget, train_dev_text
    from app.progress import steps as progress_steps

    _settings()  # every command refuses bad settings first, though training reads none
    budget = dataclasses.replace(Budget(), **({"steps": steps} if steps else {}))
    total = budget.steps * len(MODELS)
    with progress_steps(total, f"{total} training steps") as tick:
        folder = train_dev_text(budget, click.echo, out=out, tick=tick)
    click.echo(f"written to {folder}")



