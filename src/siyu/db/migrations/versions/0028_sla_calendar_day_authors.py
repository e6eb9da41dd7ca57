"""sla_calendar_days.added_by/added_at, sla_calendar_changes.changed_by: who set a special date

The special dates of /sla/policy (公司自定的放假日、补班日) kept no name: a holiday that appeared,
or one that went missing, could not be traced to the admin who added or removed it, nor to
when. Each date now keeps who added it (or last changed its kind or note) and when, and each
change of the dates who made it (the signed-in name, with the API token's through one). Dates
and changes made before this revision have no name kept ("", and no time for a date).

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sla_calendar_days", schema=None) as batch_op:
        batch_op.add_column(sa.Column("added_by", sa.String(length=200), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("added_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("sla_calendar_changes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("changed_by", sa.String(length=200), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("sla_calendar_changes", schema=None) as batch_op:
        batch_op.drop_column("changed_by")
    with op.batch_alter_table("sla_calendar_days", schema=None) as batch_op:
        batch_op.drop_column("added_at")
        batch_op.drop_column("added_by")
