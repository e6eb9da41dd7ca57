"""Alembic environment: run by `siyu migrate` and on start in the embedded default."""

from alembic import context

from siyu.config import DatabaseTimeouts
from siyu.conversations.search import alembic_include_name
from siyu.db.database import make_engine, sqlite_foreign_keys_off
from siyu.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    url = config.attributes.get("connection_url") or config.get_main_option("sqlalchemy.url")
    engine = make_engine(url, DatabaseTimeouts().unhurried(migrating=True))  # see Database.migrate
    with engine.begin() as conn:
        _migrate(conn)
    engine.dispose()


def _migrate(connection) -> None:
    if connection.dialect.name == "sqlite":
        with sqlite_foreign_keys_off(connection) as applied:
            _run_migrations(connection, applied)
    else:
        _run_migrations(connection, [])


def _run_migrations(connection, applied: list) -> None:
    context.configure(
        on_version_apply=lambda **step: applied.append(step["step"]),
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=alembic_include_name,  # the search index's engine-specific parts
    )
    with context.begin_transaction():
        context.run_migrations()


run()
