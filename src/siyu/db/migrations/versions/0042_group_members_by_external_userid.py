"""group_members: every external member of a customer group, a customer of ours or not yet

Only customers of ours were kept. A customer who joined a group by its QR code and added its
owner afterwards (the usual order in a 私域 group) was in no group on their page until the
group changed again; and a member nobody here follows who asked something and quit still
owed the group an answer, as their leave was not kept. Members are now kept by their external
userid, customer_id set once they are a customer (NULL till then); the unique key is the
external userid's. Rows from before are filled from their customer.

Revision ID: 0042
Revises: 0041
Create Date: 2026-12-08 01:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0042"
down_revision = "0041"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("external_userid", sa.String(length=64), server_default="", nullable=False)
        )
        batch_op.alter_column("customer_id", existing_type=ID, nullable=True)
    op.execute(
        "UPDATE group_members SET external_userid = (SELECT customers.external_userid FROM customers"
        " WHERE customers.id = group_members.customer_id)"
    )
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.drop_constraint("uq_group_members_tenant_id_chat_id", type_="unique")
        batch_op.create_unique_constraint(
            "uq_group_members_tenant_id_chat_id", ["tenant_id", "chat_id", "external_userid"]
        )
        batch_op.create_index(
            "ix_group_members_tenant_external", ["tenant_id", "external_userid"], unique=False
        )


def downgrade() -> None:
    op.execute("DELETE FROM group_members WHERE customer_id IS NULL")
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.drop_index("ix_group_members_tenant_external")
        batch_op.drop_constraint("uq_group_members_tenant_id_chat_id", type_="unique")
        batch_op.create_unique_constraint(
            "uq_group_members_tenant_id_chat_id", ["tenant_id", "chat_id", "customer_id"]
        )
        batch_op.alter_column("customer_id", existing_type=ID, nullable=False)
        batch_op.drop_column("external_userid")
