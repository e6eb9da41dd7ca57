"""channels.way_type: whether the code is a single-member (1) or a multi-member (2) one in WeCom

Siyu told the two apart by counting the members, so a multi-member code could not be left with
one member: a two-member channel whose other member had left could not drop them, nor be saved
from its form at all. WeCom fixes the type when the code is made and takes one member or more
in a multi-member code. Every channel stored before this has the type its members make.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06 08:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("channels", sa.Column("way_type", sa.SmallInteger(), nullable=False, server_default="2"))
    bind = op.get_bind()
    channels = sa.table(
        "channels",
        sa.column("id"),
        sa.column("staff_userids", sa.JSON()),
        sa.column("department_ids", sa.JSON()),
        sa.column("way_type"),
    )
    rows = bind.execute(sa.select(channels.c.id, channels.c.staff_userids, channels.c.department_ids)).all()
    single = [i for i, staff, departments in rows if len(staff or []) == 1 and not departments]
    for start in range(0, len(single), 500):
        chunk = single[start : start + 500]
        bind.execute(sa.update(channels).where(channels.c.id.in_(chunk)).values(way_type=1))


def downgrade() -> None:
    # not a batch: on SQLite that rebuilds channels, and dropping the old table (foreign keys on)
    # set every follow's channel_id to NULL; SQLite 3.35+ drops a column in place
    op.drop_column("channels", "way_type")
