"""Attachment bytes, served from the inquiry page.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attachment_blob",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(), nullable=False),
        sa.Column("content_type", sa.String(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["message.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("attachment_blob", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_attachment_blob_message_id"), ["message_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("attachment_blob", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attachment_blob_message_id"))
    op.drop_table("attachment_blob")
