"""tenancy: staff.call_phone

The number an escalation call rings, set in Siyu (the member's profile, or an admin). WeCom
gives self-built apps made since mid-2022 no member mobile: without a number of Siyu's own,
every call step was given up for want of one.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 08:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staff") as batch:
        batch.add_column(sa.Column("call_phone", sa.String(length=32), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("staff") as batch:
        batch.drop_column("call_phone")
