"""sla: sla_policy_versions

The board measured every wait of a past day by its policy as it stands now: shortening the
first step from 2 minutes to 1 turned last week's 95 % on time into 60 %, and deleting a
department's policy measured its past waits by the tenant's. Each saved change of a policy's
steps or clock is now kept with the time it took effect. Policies saved before this
migration get one version, in force since always: their earlier edits were not recorded.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 16:30:00
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ALWAYS = datetime(2000, 1, 1, tzinfo=UTC)


def upgrade() -> None:
    versions = op.create_table(
        "sla_policy_versions",
        sa.Column("id", ID, nullable=False),
        sa.Column("policy_id", ID, nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("business_hours_only", sa.Boolean(), nullable=False),
        sa.Column("shifts", sa.JSON(), nullable=False),
        sa.Column("public_holidays", sa.Boolean(), nullable=False),
        sa.Column("tenant_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_sla_policy_versions_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_policy_versions")),
    )
    op.create_index(
        "ix_sla_policy_versions_tenant_policy",
        "sla_policy_versions",
        ["tenant_id", "policy_id", "valid_from"],
    )
    policies = sa.table(
        "sla_policies",
        sa.column("id", ID),
        sa.column("tenant_id", ID),
        sa.column("steps", sa.JSON()),
        sa.column("business_hours_only", sa.Boolean()),
        sa.column("shifts", sa.JSON()),
        sa.column("public_holidays", sa.Boolean()),
    )
    rows = op.get_bind().execute(sa.select(policies)).mappings().all()
    if rows:
        op.bulk_insert(
            versions,
            [
                {
                    "policy_id": r["id"],
                    "tenant_id": r["tenant_id"],
                    "valid_from": ALWAYS,
                    "steps": r["steps"],
                    "business_hours_only": r["business_hours_only"],
                    "shifts": r["shifts"],
                    "public_holidays": r["public_holidays"],
                }
                for r in rows
            ],
        )


def downgrade() -> None:
    op.drop_index("ix_sla_policy_versions_tenant_policy", table_name="sla_policy_versions")
    op.drop_table("sla_policy_versions")
