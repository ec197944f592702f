"""Outbox: ``attempted_at`` (a send's intent, committed before the platform call) and
``worker_heartbeat`` (a dead worker's leases are taken back without waiting for them).

Revision ID: 0006b
Revises: 0006a
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

import store.types

revision = "0006b"
down_revision = "0006a"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("attempted_at", store.types.UTCDateTime(timezone=True), nullable=True)
        )
    op.create_table(
        "worker_heartbeat",
        sa.Column("owner", sa.String(length=100), nullable=False),
        sa.Column("last_seen", store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("owner"),
    )


def downgrade() -> None:
    op.drop_table("worker_heartbeat")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("attempted_at")
