"""archive_keys.used_at: when a key pair first decrypted a pulled message

A key that decrypts the archive is the only copy of its private key (Siyu never shows one):
removed, every later message of its version could only be skipped. Only a key that has
decrypted nothing (a wrong one uploaded) may be removed. NULL: none yet.

Revision ID: 0037
Revises: 0036
Create Date: 2026-12-07 15:10:00
"""

import sqlalchemy as sa
from alembic import op

from siyu.db.base import UTCDateTime

revision = "0037"
down_revision = "0036"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("archive_keys", sa.Column("used_at", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("archive_keys", "used_at")  # (SQLite 3.35 drops a column in place)
