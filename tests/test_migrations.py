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


def _tenant(s):
    """A tenant row as an older schema takes it (no secrets: nothing here calls WeCom)."""
    from siyu.tenancy.models import Tenant

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
    return tenant


def test_cards_queued_before_the_recipient_column_keep_their_recipient(tmp_path):
    """0004 gives cards still waiting to go their person (from the dedupe key), so the
    pacing of their next cards counts them."""
    from alembic import command
    from sqlalchemy import text

    from siyu.db import Database

    database = Database(f"sqlite:///{tmp_path / 'upgrade.db'}")
    try:
        with database.engine.begin() as conn:
            command.upgrade(database._alembic(conn), "0003")
        with database.system_session() as s:
            tenant = _tenant(s)
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


def test_a_policy_saved_before_versions_were_kept_is_in_force_since_always(tmp_path):
    """0014 gives each existing policy one kept version (SlaPolicyVersion) from 2000-01-01:
    the board measures past waits by it, not by the built-in default."""
    from datetime import UTC, datetime

    from alembic import command
    from sqlalchemy import select, text

    from siyu.db import Database
    from siyu.sla.models import SlaPolicyVersion

    database = Database(f"sqlite:///{tmp_path / 'upgrade.db'}")
    try:
        with database.engine.begin() as conn:
            command.upgrade(database._alembic(conn), "0013")
        with database.system_session() as s:
            tenant = _tenant(s)
            s.execute(
                text(
                    "INSERT INTO sla_policies (tenant_id, department_wecom_id, name, enabled, steps,"
                    " business_hours_only, shifts, public_holidays, escalation_contact, merge_window_s,"
                    " call_cooldown_s, quiet_hours, stale_after_s, updated_at) VALUES (:tenant, 0, '默认',"
                    ' 1, \'[{"delay_s": 60, "action": "app_message", "target": "agent"}]\', 1,'
                    " '[[\"09:00\", \"18:00\"]]', 0, '', 5.0, 900, '[]', 21600, '2026-12-03 12:00:00')"
                ),
                {"tenant": tenant.id},
            )
        database.migrate()
        with database.system_session() as s:
            kept = s.scalars(select(SlaPolicyVersion)).one()
            assert kept.valid_from == datetime(2000, 1, 1, tzinfo=UTC)
            assert kept.steps == [{"delay_s": 60, "action": "app_message", "target": "agent"}]
            assert (kept.business_hours_only, kept.shifts, kept.public_holidays) == (
                True,
                [["09:00", "18:00"]],
                False,
            )
        with database.engine.begin() as conn:
            command.downgrade(database._alembic(conn), "0013")
    finally:
        database.dispose()


def test_a_special_date_set_before_its_changes_were_kept_is_in_force_since_always(tmp_path):
    """0016 gives each special date already set one kept change (SlaCalendarChange) from
    2000-01-01: the board measures past waits by it, as before the migration."""
    from datetime import UTC, date, datetime

    from alembic import command
    from sqlalchemy import select, text

    from siyu.db import Database
    from siyu.sla.models import SlaCalendarChange

    database = Database(f"sqlite:///{tmp_path / 'upgrade.db'}")
    try:
        with database.engine.begin() as conn:
            command.upgrade(database._alembic(conn), "0014")
        with database.system_session() as s:
            tenant = _tenant(s)
            s.execute(
                text(
                    "INSERT INTO sla_calendar_days (tenant_id, day, kind, note)"
                    " VALUES (:tenant, '2026-09-27', 'workday', '调休')"
                ),
                {"tenant": tenant.id},
            )
        database.migrate()
        with database.system_session() as s:
            kept = s.scalars(select(SlaCalendarChange)).one()
            assert (kept.day, kept.kind) == (date(2026, 9, 27), "workday")
            assert kept.changed_at == datetime(2000, 1, 1, tzinfo=UTC)
        with database.engine.begin() as conn:
            command.downgrade(database._alembic(conn), "0014")
    finally:
        database.dispose()
