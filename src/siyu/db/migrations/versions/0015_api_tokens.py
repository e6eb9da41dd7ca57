"""tenancy: api_tokens

A script could call /api/v1 only as a signed-in person: post the login form, keep the
session cookie, send the CSRF token on writes. An admin now makes a token for an
integration, which acts as one person of the tenant (their role and scope) and is sent as
`Authorization: Bearer siyu_…`; only its sha256 is kept.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 19:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("person_id", ID, nullable=False),
        sa.Column("created_by_id", ID, nullable=True),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_api_tokens_person_id_people"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["people.id"],
            name=op.f("fk_api_tokens_created_by_id_people"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_api_tokens_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash_")),
    )
    op.create_index("ix_api_tokens_tenant_created", "api_tokens", ["tenant_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_api_tokens_tenant_created", table_name="api_tokens")
    op.drop_table("api_tokens")
