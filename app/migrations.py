"""Running the Alembic migrations from code (`seedgrid db upgrade`, tests, `make run`)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _quiet_alembic() -> None:
    """Alembic logs its plugins' set-up at INFO when first imported: noise in a worker's log, and lines
    before a known failure's one line. Its warnings stay; `seedgrid -v` (DEBUG) shows everything."""
    import logging

    quiet = logging.getLogger("alembic")
    if not quiet.isEnabledFor(logging.DEBUG):
        quiet.setLevel(logging.WARNING)


_quiet_alembic()


def alembic_config(url: str):
    from alembic.config import Config

    ini = ROOT / "alembic.ini"
    if not ini.exists():
        raise FileNotFoundError(f"{ini} is missing: run Seedgrid from its source checkout (pip install -e .)")
    config = Config(str(ini))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def head() -> str:
    """The revision the code needs (the newest migration)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    from app.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
