"""sla_waits: who snoozed a wait's reminders, and when

The board and the chat said 暂缓至 14:30, not by whom: a supervisor seeing an agent's
reminders held back could not tell whether the agent, a colleague or an admin did it. The
name is kept as it was shown when they clicked, as for "no reply needed" (closed_by); ""
and no time for snoozes made before this revision.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 20:00:00
"""

import sqlalchemy as sa
from alembic import op

from siyu.db.base import UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "sla_waits", sa.Column("snoozed_by", sa.String(length=200), nullable=False, server_default="")
    )
    op.add_column("sla_waits", sa.Column("snoozed_at", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sla_waits", schema=None) as batch_op:
        batch_op.drop_column("snoozed_at")
        batch_op.drop_column("snoozed_by")
