"""sla_calls.told_waits: the waits a call spoke of when it rang

The board and the customer's timeline read whether a call spoke of a customer from the dates:
the wait's snooze against when the call rang. Only a wait's latest snooze is kept, so a wait
snoozed before the call and again after it read 已拨打 though the call had left it out. The
call now keeps the waits it named, as a card does (its payload's told_waits). NULL for calls
planned before this: they are read from the dates as before.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06 08:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sla_calls", sa.Column("told_waits", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sla_calls", schema=None) as batch_op:
        batch_op.drop_column("told_waits")
