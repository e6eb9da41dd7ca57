"""member_renames.recorded_at: when Siyu handled the rename, on its own clock

A staff sync that read WeCom's directory before a member's userid changed, and saved it after
Siyu handled the rename, had brought the old userid back as a second member who left (and the
renamed one marked left until the next sync). The sync now keeps out of the way of a rename
recorded after it began reading, by Siyu's clock, as its start is (renamed_at is WeCom's).
NULL: recorded before this was kept.

Revision ID: 0041
Revises: 0040
Create Date: 2026-12-07 23:40:00
"""

import sqlalchemy as sa
from alembic import op

from siyu.db.base import UTCDateTime

revision = "0041"
down_revision = "0040"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("member_renames", sa.Column("recorded_at", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("member_renames", "recorded_at")
