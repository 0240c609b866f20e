"""The migrations build the schema the models describe, on SQLite and PostgreSQL, and go down
and up again: a column added to a model without its migration (or the other way round) fails
here rather than on an operator's database."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from gateway import db
from gateway.models import Base


def differences(url: str) -> list[Any]:
    engine = db.make_engine(url)
    try:
        db.upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": False}
            )
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_migrations_match_the_models(database_url: str):
    assert differences(database_url) == []


def test_the_last_migrations_go_down_and_up_again(database_url: str):
    engine = db.make_engine(database_url)
    try:
        db.upgrade(engine)
        cfg = db.alembic_config(engine.url.render_as_string(hide_password=False))
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.downgrade(cfg, "0004")
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
        assert db.is_current(engine)
    finally:
        engine.dispose()
    # And the schema is still the models' after the round trip.
    check = create_engine(database_url)
    with check.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert list(compare_metadata(context, Base.metadata)) == []
    check.dispose()
