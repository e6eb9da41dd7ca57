"""outbox: an index of what has not gone out, for the SLA board's "did not reach them" list;
escalations by conversation, for who may open a conversation they were told about

The outbox keeps every message it sent, so a day's refused or given-up escalation cards,
looked up by kind, read every card the tenant ever had (the recipient index). Unsent rows
(pending, failed, dead) are few: indexed by themselves, by tenant, kind and creation time.
A card's link opens its conversation for whoever it was sent to (an escalation contact
outside the agent's team): looked up by conversation.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 10:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UNSENT = sa.text("status IN ('pending', 'failed', 'dead')")


def upgrade() -> None:
    op.create_index(
        "ix_outbox_unsent",
        "outbox",
        ["tenant_id", "kind", "created_at"],
        unique=False,
        postgresql_where=UNSENT,
        sqlite_where=UNSENT,
    )
    op.create_index(
        "ix_sla_escalations_tenant_conversation",
        "sla_escalations",
        ["tenant_id", "conversation_id"],
        unique=False,
    )


def downgrade() -> None:
    with op.batch_alter_table("sla_escalations", schema=None) as batch_op:
        batch_op.drop_index("ix_sla_escalations_tenant_conversation")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_unsent")
