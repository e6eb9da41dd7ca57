"""sla_waits: who marked a wait "no reply needed"

The chat said a message was marked 已标记无需回复 and when, not by whom: a supervisor reading
why a customer was never answered had no one to ask. The name is kept as it was shown when
they clicked (a later rename or a removed account does not rewrite the record); "" where Siyu
closed the wait itself (a reply, a recall, the customer gone).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 19:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "sla_waits", sa.Column("closed_by", sa.String(length=200), nullable=False, server_default="")
    )


def downgrade() -> None:
    with op.batch_alter_table("sla_waits", schema=None) as batch_op:
        batch_op.drop_column("closed_by")
