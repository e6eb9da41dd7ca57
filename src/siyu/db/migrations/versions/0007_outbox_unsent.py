"""outbox: an index of what has not gone out, for the SLA board's "did not reach them" list

The outbox keeps every message it sent, so a day's refused or given-up escalation cards,
looked up by kind, read every card the tenant ever had (the recipient index). Unsent rows
(pending, failed, dead) are few: indexed by themselves, by tenant, kind and creation time.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 10:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UNSENT = sa.text("status IN ('pending', 'failed', 'dead')")


def upgrade() -> None:
    op.create_index(
        "ix_outbox_unsent",
        "outbox",
        ["tenant_id", "kind", "created_at"],
        unique=False,
        postgresql_where=UNSENT,
        sqlite_where=UNSENT,
    )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_unsent")
