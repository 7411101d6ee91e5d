"""Per-organization message retention, in days (default 90).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

One column with a server default, so rows need no backfill and processes
of the previous version keep inserting organizations meanwhile (they do
not name the column; the default fills it). On PostgreSQL 11 and later,
adding a column with a constant default rewrites nothing; the check scans
`organizations`, which is small. SQLite rebuilds the table (batch mode)
from the table as 0001 made it, given here, so that no reflection is needed
and `alembic upgrade --sql` can render the rebuild too.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ORGANIZATIONS_0005 = sa.Table(
    "organizations",
    sa.MetaData(),
    sa.Column("id", sa.Uuid(), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("id", name="pk_organizations"),
    sa.UniqueConstraint("name", name="uq_organizations_name"),
)


def upgrade() -> None:
    with op.batch_alter_table("organizations", copy_from=ORGANIZATIONS_0005) as batch:
        batch.add_column(
            sa.Column("message_retention_days", sa.Integer(), server_default="90", nullable=False)
        )
        batch.create_check_constraint(
            op.f("ck_organizations_message_retention_days"),
            "message_retention_days BETWEEN 1 AND 3650",
        )


def downgrade() -> None:
    with op.batch_alter_table("organizations") as batch:
        batch.drop_constraint(op.f("ck_organizations_message_retention_days"), type_="check")
        batch.drop_column("message_retention_days")
