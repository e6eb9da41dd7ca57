"""staff.wecom_status: the member's status as WeCom's directory gave it at the last sync

Siyu kept only active true/false, so a member who left the company (WeCom's status 5,
已退出企业) read 已停用 on /staff, as one disabled (status 2, 已禁用) would. The sync now
keeps WeCom's status: 1 active, 2 disabled, 4 not activated, 5 left; a member WeCom no longer
lists is kept as 5 (WeCom drops a member who left from its lists). Rows synced before this
revision have none (NULL) until the next sync: an inactive one reads 已离职或停用.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06 13:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staff") as batch:
        batch.add_column(sa.Column("wecom_status", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("staff") as batch:
        batch.drop_column("wecom_status")
