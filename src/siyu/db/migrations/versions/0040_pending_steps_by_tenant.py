"""escalation steps: the pending ones indexed by tenant and due time

The worker gives each tenant with due steps a turn of its own (siyu.sla.tasks.tenants_due),
so it looks for a tenant's oldest pending step, not for the oldest of all tenants: the index
by due time alone had it read past another tenant's backlog. Still pending steps only.

Revision ID: 0040
Revises: 0039
Create Date: 2026-12-07 23:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0040"
down_revision = "0039"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.drop_index("ix_sla_escalations_pending_due", table_name="sla_escalations")
    op.create_index(
        "ix_sla_escalations_tenant_pending_due",
        "sla_escalations",
        ["tenant_id", "due_at"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_sla_escalations_tenant_pending_due", table_name="sla_escalations")
    op.create_index(
        "ix_sla_escalations_pending_due",
        "sla_escalations",
        ["due_at"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
