"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import siyu.models
from siyu.conversations.search import alembic_include_name


def test_models_and_migrations_agree(db):
    with db.engine.connect() as conn:
        opts = {"compare_type": True, "include_name": alembic_include_name}
        context = MigrationContext.configure(conn, opts=opts)
        diff = compare_metadata(context, siyu.models.Base.metadata)
    assert diff == []
