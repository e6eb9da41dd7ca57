"""people.disabled_at: a login an admin ended

An admin could make logins but not end one: a person who should no longer sign in kept
their password, their open sessions and the API tokens acting as them. A login an admin
disables is refused, signed in or by a token, until it is enabled again.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 23:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("people", sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # in place (SQLite 3.35): a batch copies people and drops it, deleting the API tokens and
    # sessions that cascade from it
    op.drop_column("people", "disabled_at")
