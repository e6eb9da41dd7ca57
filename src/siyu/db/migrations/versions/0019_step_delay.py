"""sla_escalations: the delay each step was scheduled with

A wait's pending step keeps its action, target and delay when its clock changes, and was
looked up for its delay among the versions of the policy the wait has now. A wait moved to
another policy (a department's deleted, the tenant's first saved) kept its step from the old
one: no version of the new policy has it, and the step stayed where the old clock had put it
(a business-hours card due Monday 09:02 for a Sunday question the wall clock now counts).
The row now keeps its delay; steps scheduled before this migration have none (NULL) and are
still looked up as before.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 23:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sla_escalations", sa.Column("delay_s", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sla_escalations", schema=None) as batch_op:
        batch_op.drop_column("delay_s")
