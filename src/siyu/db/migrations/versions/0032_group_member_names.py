"""group_chats.member_names: what WeCom names a customer group's external members

A member of a customer group who is nobody's contact here (invited by another customer, or
who deleted the member since) was shown as 未知联系人…XXXX on the chat, though groupchat/get,
asked with need_name=1, names them. Their names (the nickname they took in the group first)
are kept by external userid; groups stored before have none until WeCom is asked again.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-07 11:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("group_chats", sa.Column("member_names", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    op.drop_column("group_chats", "member_names")  # (SQLite 3.35 drops a column in place)
