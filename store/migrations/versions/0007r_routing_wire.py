"""Routing wired in: where the country came from, From/Sender/Reply-To kept, the
round-robin turn per team, the team's spam verdicts on senders, and the indexes
assignment (open counts per rep) and the spam rate (messages per sender) read.

Revision ID: 0007r
Revises: 0007w
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0007r"
down_revision = "0007w"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN (no batch mode): on SQLite a batch recreates the table
    # and would drop 0007w's search triggers on inquiry and message.
    op.add_column(
        "inquiry", sa.Column("country_source", sa.String(), nullable=False, server_default="")
    )
    op.create_index("ix_inquiry_assignee_status", "inquiry", ["assignee", "status"])
    op.create_index(
        "ix_inquiry_contact_email_received", "inquiry", ["contact_email", "received_at"]
    )
    op.add_column("message", sa.Column("sender", sa.String(), nullable=False, server_default=""))
    op.add_column("message", sa.Column("reply_to", sa.String(), nullable=False, server_default=""))
    op.add_column("message", sa.Column("headers", sa.JSON(), nullable=False, server_default="{}"))
    op.create_table(
        "assignment_turn",
        sa.Column("team", sa.String(length=63), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("team"),
    )
    op.create_table(
        "sender_verdict",
        sa.Column("pattern", sa.String(length=320), nullable=False),
        sa.Column("verdict", sa.String(), nullable=False),
        sa.Column("by", sa.String(), nullable=False),
        sa.Column("inquiry_id", sa.Integer(), nullable=True),
        sa.Column("at", store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pattern"),
    )


def downgrade() -> None:
    op.drop_table("sender_verdict")
    op.drop_table("assignment_turn")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_column("headers")
        batch_op.drop_column("reply_to")
        batch_op.drop_column("sender")
    with op.batch_alter_table("inquiry", schema=None) as batch_op:
        batch_op.drop_index("ix_inquiry_contact_email_received")
        batch_op.drop_index("ix_inquiry_assignee_status")
        batch_op.drop_column("country_source")
