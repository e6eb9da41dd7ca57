"""outbox: who a message goes to, indexed, so that pacing one person's cards reads theirs
only; and an index of the pending messages alone, for the workers' claims

Firing looks up, for the people a batch of steps notifies, their cards waiting to go and
their cards of the last seconds. Told apart by dedupe key only, that meant reading every
such card of the tenant each batch (10,000 rows a batch at 2,500 agents); by recipient it
is the batch's people's few.

Claims looked for pending messages in the index of all messages by status: every message
leaves an entry under "pending" behind when it is sent, and until VACUUM removes them a
claim's bitmap scan read them all (150,000 entries, 117 ms a claim, at 80,000 cards on a
server with autovacuum off). The partial index holds pending messages only; sent ones stay
out of it once vacuumed (`Database.tidy` where autovacuum is off).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

NOTICE_PREFIX = "sla-notice:"
PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN (SQLite too): no copy of a busy table
    op.add_column("outbox", sa.Column("recipient", sa.String(length=64), nullable=False, server_default=""))
    op.create_index(
        "ix_outbox_recipient", "outbox", ["tenant_id", "kind", "recipient", "due_at"], unique=False
    )
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["priority", "due_at"],
        unique=False,
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
    # Cards still to go keep their pacing: their recipient is in their dedupe key,
    # sla-notice:<userid>:<first step id> (WeCom userids have no colon).
    bind = op.get_bind()
    outbox = sa.table(
        "outbox", sa.column("id"), sa.column("kind"), sa.column("dedupe_key"), sa.column("recipient")
    )
    cards = bind.execute(
        sa.select(outbox.c.id, outbox.c.dedupe_key).where(outbox.c.kind == "sla_notice")
    ).all()
    for card_id, key in cards:
        recipient = key[len(NOTICE_PREFIX) :].rsplit(":", 1)[0] if key.startswith(NOTICE_PREFIX) else ""
        bind.execute(sa.update(outbox).where(outbox.c.id == card_id).values(recipient=recipient))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_pending")
        batch_op.drop_index("ix_outbox_recipient")
        batch_op.drop_column("recipient")
