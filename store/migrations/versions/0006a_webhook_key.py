"""Webhook idempotency keys: which body each key came with (409 on reuse with another).

Revision ID: 0006a
Revises: 0005
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0006a"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_key",
        sa.Column("webhook", sa.String(length=63), nullable=False),
        sa.Column("key", sa.String(length=150), nullable=False),
        sa.Column("body_sha256", sa.String(length=64), nullable=False),
        sa.Column("inquiry_id", sa.Integer(), nullable=True),
        sa.Column("created_at", store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("webhook", "key"),
    )
    op.create_index("ix_webhook_key_created_at", "webhook_key", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_webhook_key_created_at", table_name="webhook_key")
    op.drop_table("webhook_key")
