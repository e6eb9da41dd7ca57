"""customers.name as it shows: without spaces or invisible characters at either end

WeChat users often take the Braille blank (U+2800) or a Hangul filler as their nickname. Kept
as WeCom gave it, such a name was no name to a reader yet not empty to the code: an SLA card
read "⠀ 已等待 2 分钟 未回复", the board's row and the conversation's title were blank. Names
are stored as they show from now on (siyu.customers.service.upsert_customer); this tidies the
ones stored before. The downgrade keeps them tidied: the raw names are WeCom's to give again.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-07 11:30:00
"""

import sqlalchemy as sa
from alembic import op

from siyu.visible_names import tidy_name

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    customers = sa.table("customers", sa.column("id"), sa.column("name"))
    after = 0
    while True:  # a page at a time: a company may have millions of customers
        rows = bind.execute(
            sa.select(customers.c.id, customers.c.name)
            .where(customers.c.id > after)
            .order_by(customers.c.id)
            .limit(5000)
        ).all()
        if not rows:
            return
        changed = [{"i": i, "n": tidy_name(name)} for i, name in rows if name and tidy_name(name) != name]
        if changed:
            bind.execute(
                sa.update(customers)
                .where(customers.c.id == sa.bindparam("i"))
                .values(name=sa.bindparam("n")),
                changed,
            )
        after = rows[-1].id


def downgrade() -> None:
    pass
