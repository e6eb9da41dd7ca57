"""group chats: a customer group's name and owner, from WeCom's groupchat/get

The archive's messages carry only a group's roomid, so group conversations were titled by
it, and shown only to staff who had written in them. The name and the owner are looked up
when a pull stores a group not seen before and when WeCom says a group changed
(change_external_chat).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "group_chats",
        sa.Column("id", ID, nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("owner_userid", sa.String(length=64), nullable=False),
        sa.Column("member_count", sa.Integer(), nullable=False),
        sa.Column("customer_count", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("problem", sa.String(length=300), nullable=False),
        sa.Column("tenant_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_group_chats_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_group_chats")),
        sa.UniqueConstraint("tenant_id", "chat_id", name=op.f("uq_group_chats_tenant_id_chat_id")),
    )


def downgrade() -> None:
    op.drop_table("group_chats")
