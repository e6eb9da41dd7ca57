"""sla_waits.settled: how a wait had ended before a reply pulled late answered it

A reply by hand pulled after what settled its chat later ("no reply needed", a declined
archiving, the follow's end) answers the wait it was sent in (REPLIED_BEFORE_SETTLED). The
ending it replaces is kept here ({at, reason, by}): a recall of that reply, pulled with it or
after, puts it back (the reply taken back answered nothing). NULL: none replaced.

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-07 12:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sla_waits", sa.Column("settled", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("sla_waits", "settled")  # (SQLite 3.35 drops a column in place)
