"""Who last saved a policy or a channel; a snooze's person; one token per form

- sla_policies.updated_by, channels.updated_by: a form refused because someone saved the row
  after it was drawn said "已被其他管理员修改" without saying who. The name is kept as it was
  shown when they saved; "" for rows saved before this revision (the notice keeps its words).
- sla_waits.snoozed_by_id: "a shorter snooze never cuts someone else's longer one" compared
  names, so that two staff of one name cut each other's and a renamed person could not shorten
  their own. NULL for snoozes made before this revision (compared by name, as before).
- api_tokens: a unique index on (tenant, maker, prefix). The page's form makes the prefix
  from its `once`; two posts of it at the same moment (a double click) both found no token
  and made two. Such pairs made before this revision both stay (either secret may be the one
  in use): each after the first gets "~2", "~3" at the end of its prefix, which no form can
  send, so the list tells them apart.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 22:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    for table in ("sla_policies", "channels"):
        op.add_column(
            table, sa.Column("updated_by", sa.String(length=200), nullable=False, server_default="")
        )
    op.add_column("sla_waits", sa.Column("snoozed_by_id", ID, nullable=True))
    _tell_apart_twice_made_tokens()
    op.create_index(
        "ix_api_tokens_made_from", "api_tokens", ["tenant_id", "created_by_id", "prefix"], unique=True
    )


def _tell_apart_twice_made_tokens() -> None:
    tokens = sa.table(
        "api_tokens",
        sa.column("id", ID),
        sa.column("tenant_id", ID),
        sa.column("created_by_id", ID),
        sa.column("prefix", sa.String(16)),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(tokens.c.id, tokens.c.tenant_id, tokens.c.created_by_id, tokens.c.prefix)
        .where(tokens.c.created_by_id.is_not(None))
        .order_by(tokens.c.id)
    ).all()
    seen: dict[tuple, int] = {}
    for row in rows:
        key = (row.tenant_id, row.created_by_id, row.prefix)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            bind.execute(
                sa.update(tokens).where(tokens.c.id == row.id).values(prefix=f"{row.prefix}~{seen[key]}")
            )


def downgrade() -> None:
    op.drop_index("ix_api_tokens_made_from", table_name="api_tokens")
    with op.batch_alter_table("sla_waits", schema=None) as batch_op:
        batch_op.drop_column("snoozed_by_id")
    for table in ("channels", "sla_policies"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("updated_by")
