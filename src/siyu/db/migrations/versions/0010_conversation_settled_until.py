"""conversations: settled_until, and an index by customer

A wait closed without a reply (marked "no reply needed", archiving declined, the customer and
the staff member no longer contacts) settles what the customer had said until then. Without a
record of it, a recall later in the chat (the customer taking back a newer question, the staff
member taking back a reply) looked for the first unanswered message and found the settled one:
a question marked 无需回复 came back and escalated to the leader and the phone.

The index by external_userid lets a customer who becomes known after their chat began (the
archive pulled before the add event) be linked to it at once.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 02:40:00
"""

import sqlalchemy as sa
from alembic import op

from siyu.db.base import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("conversations", sa.Column("settled_until", UTCDateTime(timezone=True), nullable=True))
    # a customer's chats found by who they are: linked when the customer becomes known after them
    op.create_index("ix_conversations_tenant_external", "conversations", ["tenant_id", "external_userid"])


def downgrade() -> None:
    op.drop_index("ix_conversations_tenant_external", table_name="conversations")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_column("settled_until")
