"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text

import siyu.models
from siyu.conversations.search import alembic_include_name
from tests.conftest import PG_URL
from tests.conversations.conftest import Archive, store
from tests.support import postgres_database


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


def _policy(s, tenant_id: int, steps: str = "[]", business_hours_only: bool = False, shifts: str = "[]"):
    """The tenant's policy row as the schemas before 0018 take it (no updated_by)."""
    s.execute(
        text(
            "INSERT INTO sla_policies (tenant_id, department_wecom_id, name, enabled, steps,"
            " business_hours_only, shifts, public_holidays, escalation_contact, merge_window_s,"
            " call_cooldown_s, quiet_hours, stale_after_s, updated_at) VALUES (:tenant, 0, '默认',"
            " :enabled, :steps, :hours, :shifts, :holidays, '', 5.0, 900, '[]', 21600, '2026-12-03 12:00:00')"
        ),
        {
            "tenant": tenant_id,
            "enabled": True,
            "steps": steps,
            "hours": business_hours_only,
            "shifts": shifts,
            "holidays": False,
        },
    )


def _admin(s, tenant_id: int) -> int:
    """An admin's login as an older schema takes it; its id."""
    s.execute(
        text(
            "INSERT INTO people (tenant_id, login, display_name, role, created_at)"
            " VALUES (:tenant, 't/admin', '王五', 'admin', '2026-12-05 12:00:00')"
        ),
        {"tenant": tenant_id},
    )
    return s.execute(text("SELECT id FROM people")).scalar_one()


def _to(database, revision: str, down: bool = False) -> None:
    """Upgrades (or downgrades) the database's schema to `revision`."""
    from alembic import command

    with database.engine.begin() as conn:
        (command.downgrade if down else command.upgrade)(database._alembic(conn), revision)


@pytest.fixture
def empty_database(tmp_path):
    """A database of its own, empty: a SQLite file, or on the PostgreSQL server the tests use a
    database made for this test (a migration's data step runs on both)."""
    from siyu.db import Database

    if not PG_URL:
        database = Database(f"sqlite:///{tmp_path / 'upgrade.db'}")
        yield database
        database.dispose()
        return
    with postgres_database(PG_URL, "siyu_upgrade") as url:
        database = Database(url)
        try:
            yield database
        finally:
            database.dispose()


def test_cards_queued_before_the_recipient_column_keep_their_recipient(empty_database):
    """0004 gives cards still waiting to go their person (from the dedupe key), so the
    pacing of their next cards counts them."""
    database = empty_database
    _to(database, "0003")
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
    _to(database, "0003", down=True)


def test_a_policy_saved_before_versions_were_kept_is_in_force_since_always(empty_database):
    """0014 gives each existing policy one kept version (SlaPolicyVersion) from 2000-01-01:
    the board measures past waits by it, not by the built-in default."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    from siyu.sla.models import SlaPolicyVersion

    database = empty_database
    _to(database, "0013")
    with database.system_session() as s:
        tenant = _tenant(s)
        steps = '[{"delay_s": 60, "action": "app_message", "target": "agent"}]'
        _policy(s, tenant.id, steps, business_hours_only=True, shifts='[["09:00", "18:00"]]')
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
    _to(database, "0013", down=True)


def test_a_special_date_set_before_its_changes_were_kept_is_in_force_since_always(empty_database):
    """0016 gives each special date already set one kept change (SlaCalendarChange) from
    2000-01-01: the board measures past waits by it, as before the migration."""
    from datetime import UTC, date, datetime

    from sqlalchemy import select

    from siyu.sla.models import SlaCalendarChange

    database = empty_database
    _to(database, "0014")
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
    _to(database, "0014", down=True)


def test_tokens_made_twice_from_one_form_before_0018_both_stay_told_apart(empty_database):
    """0018 adds a unique index on (tenant, maker, prefix); tokens a double click had made twice
    before it both stay (either secret may be in use), the second's prefix marked "~2". Who
    saved a policy or a channel, and who snoozed, are unknown for rows from before it."""
    database = empty_database
    _to(database, "0017")
    with database.system_session() as s:
        tenant = _tenant(s)
        person = _admin(s, tenant.id)
        for n, (maker, prefix) in enumerate(
            [(person, "siyu_AbC123"), (person, "siyu_AbC123"), (None, "siyu_AbC123"), (person, "siyu_Zz9999")]
        ):
            s.execute(
                text(
                    "INSERT INTO api_tokens (tenant_id, name, person_id, created_by_id, prefix, token_hash,"
                    " created_at) VALUES (:tenant, 'crm', :person, :maker, :prefix, :hash,"
                    " '2026-12-05 12:00:00')"
                ),
                {"tenant": tenant.id, "person": person, "maker": maker, "prefix": prefix, "hash": f"h{n}"},
            )
        _policy(s, tenant.id)
    database.migrate()
    with database.engine.connect() as conn:
        prefixes = conn.execute(text("SELECT token_hash, prefix FROM api_tokens ORDER BY id")).all()
        updated_by = conn.execute(text("SELECT updated_by FROM sla_policies")).scalar_one()
    assert prefixes == [
        ("h0", "siyu_AbC123"),
        ("h1", "siyu_AbC123~2"),
        ("h2", "siyu_AbC123"),  # made on the command line: no form to post twice
        ("h3", "siyu_Zz9999"),
    ]
    assert updated_by == ""
    _to(database, "0017", down=True)


def test_a_persons_api_tokens_outlive_0030_up_and_down(empty_database):
    """0030 adds a column to people. Done as a batch on SQLite, the table was copied and the old
    one dropped, and the API tokens and sessions that cascade from it went with it; so did the
    downgrades of 0022 and 0020."""
    database = empty_database
    _to(database, "0029")
    with database.system_session() as s:
        tenant = _tenant(s)
        person = _admin(s, tenant.id)
        s.execute(
            text(
                "INSERT INTO api_tokens (tenant_id, name, person_id, prefix, token_hash, created_at)"
                " VALUES (:tenant, 'crm', :person, 'siyu_AbC123', 'h', '2026-12-05 12:00:00')"
            ),
            {"tenant": tenant.id, "person": person},
        )

    def tokens() -> int:
        with database.engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM api_tokens")).scalar_one()

    _to(database, "0030")
    assert tokens() == 1
    _to(database, "0029", down=True)
    assert tokens() == 1
    _to(database, "0019", down=True)  # (0022 and 0020 take columns of people away)
    assert tokens() == 1


def test_the_companys_people_outlive_every_downgrade_to_the_first_schema(empty_database):
    """On SQLite a batch copies a table and drops the old one; with foreign keys on, dropping
    `tenants` in 0002's downgrade deleted every row that cascades from a company (its people,
    customers, conversations...), and 0006, 0009, 0010, 0017 and 0018 did the same to theirs."""
    database = empty_database
    _to(database, "0029")
    with database.system_session() as s:
        tenant = _tenant(s)
        _admin(s, tenant.id)
    _to(database, "0001", down=True)
    with database.engine.connect() as conn:
        assert conn.execute(text("SELECT login FROM people")).scalars().all() == ["t/admin"]
        if not PG_URL:  # back on for whatever uses the connection next
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    database.migrate()
    with database.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM people")).scalar_one() == 1


def test_customer_names_stored_before_0031_read_as_they_show(empty_database):
    """A nickname of the Braille blank was no name to a reader yet not empty to the code (an
    SLA card's title began with it); 0031 tidies the names stored before, whatever is inside."""
    database = empty_database
    _to(database, "0030")
    with database.system_session() as s:
        tenant = _tenant(s)
        for i, name in enumerate(["\u2800", " 王芳\u200b", "李\u2800四", ""]):
            s.execute(
                text(
                    "INSERT INTO customers (tenant_id, external_userid, name, type, gender, avatar, unionid,"
                    " corp_name, position, first_added_at, updated_at) VALUES (:t, :e, :n, 1, 0, '', '', '',"
                    " '', '2026-12-05 12:00:00', '2026-12-05 12:00:00')"
                ),
                {"t": tenant.id, "e": f"wm{i}", "n": name},
            )
    _to(database, "0031")
    with database.engine.connect() as conn:
        names = conn.execute(text("SELECT name FROM customers ORDER BY external_userid")).scalars().all()
    assert names == ["", "王芳", "李\u2800四", ""]


def test_customer_groups_stored_before_0023_are_the_ones_whose_members_are_read_again(empty_database):
    """0023 leaves every group stored before it with its members never read: the worker's
    backfill takes the active ones (a dismissed one has nobody left to read)."""
    from siyu.conversations import groups

    database = empty_database
    _to(database, "0022")
    with database.system_session() as s:
        tenant_id = _tenant(s).id
        for chat_id, status in [("wrOld", "active"), ("wrGone", "dismissed"), ("wrStaff", "internal")]:
            s.execute(
                text(
                    "INSERT INTO group_chats (tenant_id, chat_id, name, owner_userid, member_count,"
                    " customer_count, status, checked_at, problem) VALUES (:tenant, :chat, '老客户群',"
                    " 'zhangsan', 3, 2, :status, '2026-12-01 12:00:00', '')"
                ),
                {"tenant": tenant_id, "chat": chat_id, "status": status},
            )
    database.migrate()
    with database.tenant_session(tenant_id) as s:
        assert groups.members_unread(s, 10) == ["wrOld"]
    _to(database, "0022", down=True)


def test_channels_stored_before_0025_keep_the_type_their_members_made_them(empty_database):
    """0025 keeps each code's WeCom type: one member and no department, single-member (1);
    several members or departments, multi-member (2), which may later be left with one member."""
    from siyu.customers.models import Channel

    database = empty_database
    _to(database, "0024")
    with database.system_session() as s:
        tenant_id = _tenant(s).id
        old = sa.table(
            "channels",
            *(sa.column(c) for c in ("tenant_id", "name", "state", "config_id", "qr_code", "skip_verify")),
            *(
                sa.column(c, sa.JSON())
                for c in ("staff_userids", "department_ids", "tag_ids", "welcome_link")
            ),
            *(sa.column(c) for c in ("welcome_text", "welcome_image_url", "enabled", "notice", "created_at")),
        )
        for state, staff, departments in [
            ("ch_one", ["zhangsan"], []),
            ("ch_two", ["zhangsan", "lisi"], []),
            ("ch_dept", ["zhangsan"], [4]),
        ]:
            row = {"tenant_id": tenant_id, "name": state, "state": state, "config_id": "", "qr_code": ""}
            row |= {"staff_userids": staff, "department_ids": departments, "tag_ids": [], "welcome_link": {}}
            row |= {"skip_verify": True, "welcome_text": "", "welcome_image_url": "", "enabled": True}
            s.execute(sa.insert(old).values(**row, notice="", created_at=datetime(2026, 12, 1, tzinfo=UTC)))
    database.migrate()
    with database.tenant_session(tenant_id) as s:
        types = dict(s.execute(select(Channel.state, Channel.way_type)).all())
    assert types == {"ch_one": 1, "ch_two": 2, "ch_dept": 2}
    from siyu.customers.models import Customer, Follow

    with database.tenant_session(tenant_id) as s:
        channel_id = s.scalar(select(Channel.id).where(Channel.state == "ch_two"))
        customer = Customer(external_userid="wm0025", name="王女士")
        s.add(customer)
        s.flush()
        s.add(Follow(customer_id=customer.id, staff_userid="zhangsan", channel_id=channel_id))
    _to(database, "0024", down=True)
    # taken down, the customers keep their channel (a rebuilt table had set every follow's to NULL)
    with database.system_session() as s:
        assert s.execute(sa.text("SELECT channel_id FROM follows")).scalars().all() == [channel_id]


def test_settings_set_before_0027_keep_their_values_and_no_one_is_named_as_changing_them(empty_database):
    """0027 keeps who changes the default welcome text and the time zone from then on; those set
    before it stay as they were, with nobody named (the page then says nothing of who)."""
    from siyu.tenancy import setting_changes

    database = empty_database
    _to(database, "0025")
    with database.system_session() as s:
        tenant_id = _tenant(s).id
        s.execute(
            text("UPDATE tenants SET welcome_text = '您好', timezone = 'Asia/Tokyo' WHERE id = :id"),
            {"id": tenant_id},
        )
    database.migrate()
    with database.tenant_session(tenant_id) as s:
        assert setting_changes.last(s) == {}
        row = s.execute(text("SELECT welcome_text, timezone FROM tenants")).one()
    assert tuple(row) == ("您好", "Asia/Tokyo")
    _to(database, "0025", down=True)


@pytest.mark.skipif(bool(PG_URL), reason="PostgreSQL's index never folded accents")
def test_messages_indexed_before_0039_are_searched_with_their_accents(empty_database):
    """Before 0039 SQLite's FTS5 table folded é to e; 0039 makes it again and rebuilds it from the
    tokens already stored, so café is no longer found by cafe."""
    from siyu.conversations import search

    database = empty_database
    _to(database, "0038")
    with database.engine.begin() as conn:  # the index as 0001 had made it
        for statement in search.search_drop_ddl("sqlite"):
            conn.exec_driver_sql(statement)
        old = [
            s.replace(", tokenize='unicode61 remove_diacritics 0'", "") for s in search.search_ddl("sqlite")
        ]
        assert old != search.search_ddl("sqlite")
        for statement in old:
            conn.exec_driver_sql(statement)
    with database.system_session() as s:
        tenant_id = _tenant(s).id
    arc = Archive()
    arc.text("wmcafe", "zhangsan", "想订 café 的位子", 10)
    store(database, tenant_id, arc.items)

    def matched(conn, word: str) -> list[int]:
        found = f"SELECT rowid FROM {search.FTS_TABLE} WHERE {search.FTS_TABLE} MATCH ?"
        return conn.exec_driver_sql(found, (f'"{word}"',)).scalars().all()

    with database.engine.connect() as conn:
        [indexed] = matched(conn, "cafe")  # the fold, before
    database.migrate()
    with database.engine.connect() as conn:
        assert (matched(conn, "cafe"), matched(conn, "café")) == ([], [indexed])


def test_partial_index_predicates_are_the_models(empty_database):
    """The partial indexes' predicates as the models have them, on either database (alembic's
    compare_metadata does not look at predicates: a drift had gone unseen)."""
    database = empty_database
    database.migrate()
    pg = database.is_postgres
    with database.engine.connect() as conn:
        if pg:
            rows = conn.execute(
                text(
                    "SELECT c.relname, pg_get_expr(i.indpred, i.indrelid) FROM pg_index i"
                    " JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indpred IS NOT NULL"
                )
            ).all()
        else:
            rows = [
                (n, s.split(" WHERE ", 1)[1])
                for n, s in conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'index'"))
                if s and " WHERE " in s
            ]
    stored = dict(rows)
    wanted = {
        ix.name: str(ix.dialect_options["postgresql" if pg else "sqlite"].get("where"))
        for t in siyu.models.Base.metadata.sorted_tables
        for ix in t.indexes
        if ix.dialect_options["postgresql" if pg else "sqlite"].get("where") is not None
    }
    assert set(stored) == set(wanted)
    if not pg:
        assert stored == wanted
    else:  # PostgreSQL writes them its own way: compare the literals
        for name, predicate in wanted.items():
            for literal in [p.strip(" ()'") for p in predicate.split("'")[1::2]]:
                assert f"'{literal}'" in stored[name], (name, stored[name])


def test_two_processes_migrating_a_new_database_at_once_both_succeed():
    """Two `siyu serve` started together with SIYU_AUTO_MIGRATE on (a deploy's two replicas):
    both migrated the new database at once, and the second failed on tables the first had just
    made. Migrations now take their turn: the second finds the schema at head."""
    from siyu.db import Database

    if not PG_URL:
        pytest.skip("SQLite has one writer: its migrations never overlap")
    with postgres_database(PG_URL, "siyu_twice") as url:
        errors, results = [], []
        start = threading.Barrier(2)

        def migrate() -> None:
            db = Database(url)
            try:
                start.wait(timeout=10)
                results.append(db.migrate())
            except Exception as exc:  # noqa: BLE001 - what the second process met
                errors.append(exc)
            finally:
                db.dispose()

        both = [threading.Thread(target=migrate) for _ in range(2)]
        for t in both:
            t.start()
        for t in both:
            t.join(timeout=300)
        assert not errors, str(errors[0]).splitlines()[0]
        assert [after for _, after in results] == [results[0][1]] * 2
