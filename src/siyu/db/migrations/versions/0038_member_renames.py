"""member_renames: a member's old userid and when WeCom changed it

The archive lags, and so may an event's handling: a customer's message sent to a member just
before their userid changed, pulled after the change was handled, opened a chat and a wait
under the old userid, which nobody has any more (their reply went to the other chat, the
wait went on to a call). A loss handled after the rename made a follow for the old userid and
left the customer the member's. Each rename is kept with its time, and what was sent before
it under the old userid is the member's under the new one.

Revision ID: 0038
Revises: 0037
Create Date: 2026-12-07 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0038"
down_revision = "0037"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "member_renames",
        sa.Column("id", ID, nullable=False),
        sa.Column("old_userid", sa.String(length=64), nullable=False),
        sa.Column("new_userid", sa.String(length=64), nullable=False),
        sa.Column("renamed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_member_renames_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_renames")),
    )
    op.create_index("ix_member_renames_tenant_old", "member_renames", ["tenant_id", "old_userid"])


def downgrade() -> None:
    op.drop_index("ix_member_renames_tenant_old", table_name="member_renames")
    op.drop_table("member_renames")
