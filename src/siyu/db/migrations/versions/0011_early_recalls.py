"""conversations: early_recalls

A recall stored before the message it takes back (an import file listing them out of order,
two files imported newest first) had found nothing to mark; the message, stored later, waited
for a reply and escalated to the leader and the phone. The recall is now kept until its
message comes, which is then stored recalled.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 05:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "early_recalls",
        sa.Column("id", ID, nullable=False),
        sa.Column("msgid", sa.String(length=128), nullable=False),
        sa.Column("recall_msgid", sa.String(length=128), nullable=False),
        sa.Column("recalled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_early_recalls_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_early_recalls")),
        sa.UniqueConstraint("tenant_id", "msgid", name=op.f("uq_early_recalls_tenant_id_msgid")),
    )


def downgrade() -> None:
    op.drop_table("early_recalls")
