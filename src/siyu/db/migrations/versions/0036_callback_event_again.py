"""callback_events.again: an event to run once more when its run ends

Edit, group-update, tag and directory events carry no data and a CreateTime in whole seconds:
a second change of the same kind in the same second comes as the same XML, stored once by its
digest as if it were WeCom retrying, and the change was lost once the first had run. Their
handlers read WeCom's state anyway: such a repeat runs the event again (siyu.intake.service
store), and one arriving while it runs marks it here, to run once more when it ends (mark_done).

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-07 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0036"
down_revision = "0035"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "callback_events", sa.Column("again", sa.Boolean(), nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    op.drop_column("callback_events", "again")  # (SQLite 3.35 drops a column in place)
