"""search backlog: on PostgreSQL, messages are indexed for search in transactions of their own

Ingest used to insert a batch's search tokens in the transaction that stores the batch,
which made the archive's progress (and every escalation waiting for it) wait for the search
index too. On PostgreSQL ingest now queues the batch's tokens here, one row of JSON, and
`siyu.conversations.search.index_backlog` indexes them from another connection.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 14:00:00
"""

import sqlalchemy as sa
from alembic import op


revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# What siyu.conversations.search.index_backlog ran when this migration was written.
INDEX_ONE_BATCH = sa.text(
    """
    WITH batch AS (
        DELETE FROM search_backlog WHERE id = (
            SELECT id FROM search_backlog WHERE tenant_id = :tenant ORDER BY id LIMIT 1
        )
        RETURNING tenant_id, entries
    ), added AS (
        INSERT INTO message_search (tenant_id, message_id, tokens)
        SELECT batch.tenant_id, message.id, entry ->> 1
        FROM batch
        CROSS JOIN LATERAL json_array_elements(batch.entries::json) AS entry
        JOIN messages AS message
            ON message.id = (entry ->> 0)::bigint AND message.tenant_id = batch.tenant_id
        ON CONFLICT (tenant_id, message_id) DO NOTHING
    )
    SELECT count(*) FROM batch
    """
)


def upgrade() -> None:
    op.create_table(
        "search_backlog",
        sa.Column("id", ID, nullable=False),
        sa.Column("entries", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_search_backlog_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_backlog")),
    )
    op.create_index("ix_search_backlog_tenant_id", "search_backlog", ["tenant_id", "id"], unique=False)


def downgrade() -> None:
    # The older code never reads the backlog: index what is still queued, so that no stored
    # message drops out of search.
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        tenants = bind.execute(sa.text("SELECT DISTINCT tenant_id FROM search_backlog")).scalars().all()
        for tenant_id in tenants:
            while bind.execute(INDEX_ONE_BATCH, {"tenant": tenant_id}).one()[0]:
                pass
    op.drop_index("ix_search_backlog_tenant_id", table_name="search_backlog")
    op.drop_table("search_backlog")
