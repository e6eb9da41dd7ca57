"""escalation steps: a partial index of the pending ones by due time, for the workers

A wait has one pending step at a time and steps are looked for only while pending, so the
index of due times holds the pending steps only: firing a step removes it from the index
instead of adding an entry under "fired".

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 14:36:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    with op.batch_alter_table("sla_escalations", schema=None) as batch_op:
        batch_op.drop_index("ix_sla_escalations_due")
        batch_op.create_index(
            "ix_sla_escalations_pending_due",
            ["due_at"],
            unique=False,
            postgresql_where=PENDING,
            sqlite_where=PENDING,
        )


def downgrade() -> None:
    with op.batch_alter_table("sla_escalations", schema=None) as batch_op:
        batch_op.drop_index("ix_sla_escalations_pending_due")
        batch_op.create_index("ix_sla_escalations_due", ["status", "due_at"], unique=False)
