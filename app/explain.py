"""Known failures as one line for a person: what happened, which setting or file, what to do.

Commands and process entry points (`seedgrid ...`, `python -m workers.*`) pass any
exception through `explain`; a known one is printed as its line (no traceback, exit 1),
an unknown one keeps its traceback, since that is a bug to report. URLs are shown with
their passwords hidden.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Callable

from app.settings import redact_url


class ChildFailed(Exception):
    """A child process this one ran stopped with its own one line (exit CANNOT_SERVE): passed on as it is."""

    @classmethod
    def from_stderr(cls, stderr: str, what: str) -> "ChildFailed":
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        return cls(f"{what}: {lines[-1].removeprefix('Error: ') if lines else 'it printed nothing'}")


def _settings_line(exc) -> str:
    lines = []
    for e in exc.errors():
        name = "_".join(str(p) for p in e["loc"] if not isinstance(p, int)).upper()
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"SEEDGRID_{name or '*'}: {msg}")
    return "invalid settings: " + "; ".join(lines)


def _db_url() -> str:
    import os

    url = os.environ.get("SEEDGRID_DATABASE_URL")
    return f"the database at {redact_url(url)} (SEEDGRID_DATABASE_URL)" if url else "the SQLite database in the state folder"


def explain(exc: BaseException) -> str | None:
    """One line for a known failure, or None (then the traceback is the useful report)."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    if isinstance(exc, ValidationError):
        return _settings_line(exc)
    if isinstance(exc, ChildFailed):
        return str(exc)
    if isinstance(exc, SettingsError):
        m = re.search(r'field "(\w+)"', str(exc))
        name = f"SEEDGRID_{m.group(1).upper()}" if m else "a SEEDGRID_* variable"
        return f"invalid settings: {name} is not valid JSON; write it as a JSON object or list, e.g. '{{}}'"

    from app.bootstrap import DatabaseNotReady
    from app.chain.base import ChainError
    from app.protocol.errors import CheckpointError, InvalidRequest
    from app.redis_server import RedisUnavailable

    if isinstance(exc, (DatabaseNotReady, ChainError, CheckpointError, RedisUnavailable)):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, InvalidRequest):
        return f"{exc.field}: {exc.message}"

    import redis
    import sqlalchemy.exc as sa

    if isinstance(exc, redis.AuthenticationError):
        return "Redis refused the password in SEEDGRID_REDIS_URL; correct it"
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return f"Redis did not answer ({first_line(exc)}); start it, or check SEEDGRID_REDIS_URL"
    if isinstance(exc, (sa.OperationalError, sa.ProgrammingError)) and _no_table(exc):
        return f"{_db_url()} has no Seedgrid tables ({first_line(exc.orig or exc)}); run `seedgrid db upgrade`"
    if isinstance(exc, (sa.OperationalError, sa.InterfaceError)):
        return f"{_db_url()} cannot be reached: {first_line(exc.orig or exc)}; start it or correct the URL"
    if isinstance(exc, (sa.ArgumentError, sa.NoSuchModuleError)):
        return f"{_db_url()}: {first_line(exc)}; correct SEEDGRID_DATABASE_URL"
    if isinstance(exc, sa.DatabaseError):
        return f"{_db_url()} answered with an error: {first_line(exc.orig or exc)}"

    try:
        from kombu.exceptions import OperationalError as BrokerError
    except ImportError:  # pragma: no cover
        BrokerError = ()  # type: ignore[assignment]
    if BrokerError and isinstance(exc, BrokerError):
        return f"the broker did not answer ({first_line(exc)}); start Redis, or check SEEDGRID_REDIS_URL"
    if isinstance(exc, PermissionError):
        return (f"permission denied on {exc.filename or 'a file'}; make the state folder writable "
                f"(SEEDGRID_STATE_DIR) or choose another")
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}; check SEEDGRID_STATE_DIR and the paths in settings"
    return None


def _no_table(exc) -> bool:
    """SQLite's "no such table", PostgreSQL's undefined table (SQLSTATE 42P01)."""
    return "no such table" in str(exc) or getattr(exc.orig, "sqlstate", None) == "42P01"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


VERBOSE_ENV = "SEEDGRID_VERBOSE"  # set by `seedgrid -v`: the processes it starts print tracebacks too
CANNOT_SERVE = 78  # sysexits' EX_CONFIG: a worker stopped by a known failure; its supervisor does not restart it


def run_entry_point(main: Callable[[], int]) -> int:
    """Run a process's main(); print a known failure as one line on stderr and exit CANNOT_SERVE (with
    -v or --verbose among the process's arguments, its traceback first)."""
    try:
        return main()
    except Exception as exc:  # noqa: BLE001 (unknown failures are re-raised below)
        line = explain(exc)
        if line is None:
            raise
        if {"-v", "--verbose"} & set(sys.argv[1:]) or os.environ.get(VERBOSE_ENV):
            import traceback

            traceback.print_exc()
        print(f"Error: {line}", file=sys.stderr)
        return CANNOT_SERVE
