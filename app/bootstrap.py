"""What a process needs before it works: a Redis that answers and a migrated database."""

from __future__ import annotations

import logging

from app.locks import file_lock
from app.redis_server import RedisHandle, ensure_redis
from app.settings import Settings

log = logging.getLogger(__name__)


class DatabaseNotReady(RuntimeError):
    pass


def prepare_redis(settings: Settings) -> RedisHandle:
    handle = ensure_redis(settings)
    if handle.started_here:
        log.info("started the embedded Redis at %s", handle.url)
    return handle


def prepare_database(settings: Settings) -> None:
    """Migrate the embedded SQLite database; check that an external one is at head."""
    # app.migrations before alembic's own modules: it quiets their import-time INFO lines
    from app import migrations

    url = settings.sqlalchemy_url
    if settings.database_url is None:
        with file_lock(settings.state_path / "migrate.lock"):  # several local processes start at once
            migrations.upgrade(url)
        return
    head = migrations.head()
    current = migrations.current(url)
    if current != head:
        raise DatabaseNotReady(
            f"the database is at revision {current or 'none'}, the code needs {head}; run `seedgrid db upgrade`"
        )
