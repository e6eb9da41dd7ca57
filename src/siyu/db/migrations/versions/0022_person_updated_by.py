"""people.updated_by, people.updated_at: who last made or changed a login

Logins can be made and changed through the API with a token now, as well as on 设置 → 账号:
an admin reading the list could not tell who had disabled a login or changed a role, nor
whether it was a colleague or an integration. "" and NULL for logins untouched since.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 01:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("people", sa.Column("updated_by", sa.String(length=200), nullable=False, server_default=""))
    op.add_column("people", sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # in place (SQLite 3.35): a batch copies people and drops it, deleting the API tokens and
    # sessions that cascade from it
    op.drop_column("people", "updated_at")
    op.drop_column("people", "updated_by")
