"""people.role_set_by_hand: whether an admin chose the person's role

A WeCom member's login is made an agent or a supervisor by whether they lead anyone, and an
agent made a leader since becomes a supervisor at their next WeCom sign-in. That sign-in also
undid an admin's choice: a leader the admin had made an agent was a supervisor again, seeing
the whole team's customers. A role an admin chose (adding the login, or changing its role)
now holds; rows from before this revision count as not chosen.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-07 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # (ALTER TABLE ADD COLUMN, not a batch: on SQLite a batch copies the table, and dropping the
    # old one deleted the API tokens that cascade from it)
    column = sa.Column("role_set_by_hand", sa.Boolean(), nullable=False, server_default=sa.false())
    op.add_column("people", column)


def downgrade() -> None:
    op.drop_column("people", "role_set_by_hand")  # (SQLite 3.35 drops a column in place)
