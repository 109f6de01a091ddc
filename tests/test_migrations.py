"""Migrations run on SQLite and on the Postgres this machine runs, and match the models."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from app import migrations
from app.db import make_engine
from app.models import Base


def check_schema(url):
    migrations.upgrade(url)
    assert migrations.current(url) is not None
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert "generations" in inspect(conn).get_table_names()
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            assert diff == [], f"models and migrations differ: {diff}"
    finally:
        engine.dispose()
    migrations.downgrade(url, "base")
    assert migrations.current(url) is None
    migrations.upgrade(url)


def test_migrations_on_sqlite(tmp_path):
    check_schema(f"sqlite:///{tmp_path}/m.db")


def test_migrations_on_postgres(postgres_url):
    check_schema(postgres_url)


def test_recording_on_postgres(postgres_url):
    """The generation records work on Postgres too (JSON columns, unique task id)."""
    from sqlalchemy.exc import IntegrityError
    from sqlalchemy.orm import Session

    from app.generation import records
    from app.protocol.request import parse_request

    migrations.upgrade(postgres_url)
    engine = make_engine(postgres_url)
    req = parse_request({"model": "RealisticVision", "prompt": "a cat", "seed": 1})
    try:
        with Session(engine) as s:
            records.begin(s, task_id="t1", request=req, worker="w")
            records.finish(s, task_id="t1", media_type="image/png", pixel_sha256="a" * 64, artifact_sha256="b" * 64,
                           artifact_path="/x.png", timings={"generate_ms": 1.0}, environment={"device": "cpu"})
            s.commit()
            again = records.begin(s, task_id="t1", request=req, worker="w2")
            assert again.status == "succeeded" and again.attempts == 1, "a redelivery must not redo a finished job"
            s.add(type(again)(task_id="t1", request_id="r", kind="challenge", model="m", prompt="p",
                              negative_prompt="", seed=1, params={}, status="running", attempts=1))
            with pytest.raises(IntegrityError):
                s.flush()
    finally:
        engine.dispose()
