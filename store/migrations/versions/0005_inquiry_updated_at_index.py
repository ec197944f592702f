"""Index inquiry.updated_at: the web inbox's live feed reads recent changes by it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inquiry", schema=None) as batch_op:
        batch_op.create_index("ix_inquiry_updated_at", ["updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inquiry", schema=None) as batch_op:
        batch_op.drop_index("ix_inquiry_updated_at")
