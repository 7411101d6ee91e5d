"""A device's previous DTLS PSK, valid until a moment: gapless key rotation.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27

Two nullable columns: processes of the previous version keep working
meanwhile (they ignore them).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("psk_previous", sa.LargeBinary(32), nullable=True))
        batch.add_column(sa.Column("psk_previous_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("psk_previous_until")
        batch.drop_column("psk_previous")
