"""setting_changes: who changed a company setting of 设置, when, from what to what

Any admin could change the default welcome text (默认欢迎语) and the time zone (时区), and
nobody could tell who had, nor when; after a change of zone past days' figures are read in the
new zone, and nothing said which zone they had been read in before. Each change is kept now,
by the signed-in name (with the API token's, through one) or 命令行 for `siyu tenant
set-timezone`. Settings changed before this revision have no change kept.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-06 10:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "setting_changes",
        sa.Column("id", ID, nullable=False),
        sa.Column("setting", sa.String(length=32), nullable=False),
        sa.Column("old_value", sa.String(length=2000), nullable=False),
        sa.Column("new_value", sa.String(length=2000), nullable=False),
        sa.Column("changed_by", sa.String(length=200), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_setting_changes_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_setting_changes")),
    )
    op.create_index(
        "ix_setting_changes_tenant_setting", "setting_changes", ["tenant_id", "setting", "changed_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_setting_changes_tenant_setting", table_name="setting_changes")
    op.drop_table("setting_changes")
