"""Pipeline batches already stored, so that a redelivered batch is skipped whole.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

Message ids already made a redelivered batch store its messages once, but
its communication-log rows and counters were written again. One row per
batch (hundreds of records) makes the whole batch exactly-once; rows older
than a day are deleted by the worker's housekeeping. `announced_at` says the
batch's `message.stored` events went out, so a redelivery announces only
what was not.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pipeline_batches",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("announced_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_batches")),
    )
    op.create_index(op.f("ix_pipeline_batches_stored_at"), "pipeline_batches", ["stored_at"])


def downgrade() -> None:
    op.drop_table("pipeline_batches")
