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


def test_cards_queued_before_the_recipient_column_keep_their_recipient(tmp_path):
    """0004 gives cards still waiting to go their person (from the dedupe key), so the
    pacing of their next cards counts them."""
    from alembic import command
    from sqlalchemy import text

    from siyu.db import Database
    from siyu.tenancy.models import Tenant

    database = Database(f"sqlite:///{tmp_path / 'upgrade.db'}")
    try:
        with database.engine.begin() as conn:
            command.upgrade(database._alembic(conn), "0003")
        with database.system_session() as s:
            tenant = Tenant(
                slug="t",
                name="t",
                corp_id="ww1",
                agent_id=1,
                agent_secret_sealed="",
                contact_secret_sealed="",
                callback_token_sealed="",
                encoding_aes_key_sealed="",
            )
            s.add(tenant)
            s.flush()
            for key, kind in [("sla-notice:zhang.wei:17", "sla_notice"), ("welcome:wmA:1", "welcome")]:
                s.execute(
                    text(
                        "INSERT INTO outbox (tenant_id, kind, dedupe_key, payload, priority, status,"
                        " due_at, attempts, last_error, created_at) VALUES (:tenant, :kind, :key, '{}', 5,"
                        " 'pending', '2026-12-03 12:00:00', 0, '', '2026-12-03 12:00:00')"
                    ),
                    {"tenant": tenant.id, "key": key, "kind": kind},
                )
        database.migrate()
        with database.engine.connect() as conn:
            rows = dict(conn.execute(text("SELECT dedupe_key, recipient FROM outbox")).all())
        assert rows == {"sla-notice:zhang.wei:17": "zhang.wei", "welcome:wmA:1": ""}
        with database.engine.begin() as conn:
            command.downgrade(database._alembic(conn), "0003")
    finally:
        database.dispose()
