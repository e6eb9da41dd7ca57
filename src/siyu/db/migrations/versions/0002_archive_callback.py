"""the 会话存档 app's own callback: Token and EncodingAESKey per tenant (sealed)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 10:51:32.915708
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing tenants get "" (no separate archive callback yet): their msgaudit_notify keeps
    # arriving at the main callback URL until the admin sets the archive's own pair up.
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "archive_callback_token_sealed", sa.String(length=500), nullable=False, server_default=""
            )
        )
        batch_op.add_column(
            sa.Column(
                "archive_encoding_aes_key_sealed", sa.String(length=500), nullable=False, server_default=""
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("archive_encoding_aes_key_sealed")
        batch_op.drop_column("archive_callback_token_sealed")
