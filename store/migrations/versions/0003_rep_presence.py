"""Reps' own away flag (web inbox / chat "I'm away").

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rep_presence",
        sa.Column("rep_id", sa.String(length=63), nullable=False),
        sa.Column("away", sa.Boolean(), nullable=False),
        sa.Column("updated_at", store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("rep_id"),
    )


def downgrade() -> None:
    op.drop_table("rep_presence")
