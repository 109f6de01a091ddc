"""Progress displays for the waits a person sits through (issue 15): building and training dev
checkpoints, calibrations, benchmarks, `seedgrid up` until its network is ready.

On a terminal, Rich's live bar, cleared when the block ends; elsewhere (a log file, CI) nothing
while it runs. Either way one line with the final state once the block completes, and nothing
when it fails, so that a failure stays the one line that says what happened."""

from __future__ import annotations

import time
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
    t0, done = time.monotonic(), [0]
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=console,
                  transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task(description, total=total)

        def step(what: str) -> None:
            if done[0]:  # the previous step is done
                progress.advance(task)
            done[0] += 1
            progress.update(task, description=what)

        yield step
    console.print(f"{description}: {min(done[0], total)}/{total} in {time.monotonic() - t0:.0f} s",
                  highlight=False, markup=False)
