"""sla: sla_calendar_changes

The board measured every past wait by the special dates (上班 make-up days, holidays) as they
stand now: making last Saturday a workday on Monday turned Friday evening's answer, 2 business
minutes on Monday morning, into 9 hours late, and taking the day out again turned it back.
Each date set or taken back is now kept with the time it was, and a wait is measured by the
dates in force when it ended. Dates set before this migration are in force since always:
when they were set was not recorded.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 19:50:00
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ALWAYS = datetime(2000, 1, 1, tzinfo=UTC)


def upgrade() -> None:
    changes = op.create_table(
        "sla_calendar_changes",
        sa.Column("id", ID, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_sla_calendar_changes_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_calendar_changes")),
    )
    op.create_index(
        "ix_sla_calendar_changes_tenant_changed", "sla_calendar_changes", ["tenant_id", "changed_at"]
    )
    days = sa.table(
        "sla_calendar_days",
        sa.column("tenant_id", ID),
        sa.column("day", sa.Date()),
        sa.column("kind", sa.String()),
    )
    rows = op.get_bind().execute(sa.select(days)).mappings().all()
    if rows:
        op.bulk_insert(
            changes,
            [
                {"tenant_id": r["tenant_id"], "day": r["day"], "kind": r["kind"], "changed_at": ALWAYS}
                for r in rows
            ],
        )


def downgrade() -> None:
    op.drop_index("ix_sla_calendar_changes_tenant_changed", table_name="sla_calendar_changes")
    op.drop_table("sla_calendar_changes")
