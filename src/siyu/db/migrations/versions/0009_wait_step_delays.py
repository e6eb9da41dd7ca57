"""SLA waits: the step delays and the clock a wait began under, kept with it

The board's share answered within each step measured a day's waits by their policy as it
stands now: an admin who moved step 1 from 2 to 8 minutes at noon rewrote the morning's
figures, and a wait whose department policy was deleted had no steps to go by. The delays
(seconds, comma-separated) and whether they count business hours only are kept with the
wait when it begins. NULL where unknown: waits from before this column are measured as
before.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 18:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN (SQLite too): no copy of a busy table
    op.add_column("sla_waits", sa.Column("step_delays", sa.String(length=128), nullable=True))
    op.add_column("sla_waits", sa.Column("business_clock", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sla_waits", schema=None) as batch_op:
        batch_op.drop_column("business_clock")
        batch_op.drop_column("step_delays")
