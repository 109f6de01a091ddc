"""Progress displays for the waits a person sits through (issue 15): building dev checkpoints,
`seedgrid up` until its network is ready. Rich's live display on a terminal; elsewhere (a log
file, CI) the final state once, so logs stay short."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def steps(total: int, description: str, console=None) -> Iterator[Callable[[str], None]]:
    """A bar of `total` steps; yields `step(what)`: mark the previous step done and show `what` next
    (on stderr unless a console is given: a command's own output stays parseable)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    console = console or Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task(description, total=total)
        started = [False]

        def step(what: str) -> None:
            if started[0]:
                progress.advance(task)
            started[0] = True
            progress.update(task, description=what)

        yield step
        if started[0]:
            progress.advance(task)
        progress.update(task, description=description)


@contextmanager
def waiting(what: str, console=None) -> Iterator[None]:
    """A spinner with `what` while the block runs (a terminal only: elsewhere one line)."""
    from rich.console import Console

    console = console or Console(stderr=True)
    if not console.is_terminal:
        console.print(what)
        yield
        return
    with console.status(what):
        yield
