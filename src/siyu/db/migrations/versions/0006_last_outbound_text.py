"""conversations: the text of the staff's last message, kept with the conversation

It is what the needs-reply classifier reads a customer message against (好的 after 确定要取消吗？
needs a reply). Ingest looked it up for every conversation a batch had a customer message
in: a correlated query walking each conversation's newest messages back to a staff one,
about 10 us a conversation (5 ms of a 1,000-message batch). Kept with the conversation, it
is read with the conversation's state. NULL where unknown: conversations from before this
column and those whose last staff message was recalled are looked up as before.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 01:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN (SQLite too): no copy of a busy table
    op.add_column("conversations", sa.Column("last_outbound_text", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_column("last_outbound_text")
