"""Initial schema: organizations, groups, devices, codecs, sessions, logs, messages, downlinks.

Revision ID: 0001
Revises:
Create Date: 2026-11-27

The column types are written out here rather than imported from
`nubes.store.tables`: a migration records what was created at the time, and
must not change when the live types change later. They are the same types:
`UTCDateTime` is stored as `DateTime(timezone=True)`, JSON is JSONB on
PostgreSQL, and the log's id is a plain INTEGER on SQLite (the only type
SQLite auto-increments). Constraint and index names follow the naming
convention of `tables.metadata`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)
JSON_TYPE: Any = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGINT_ID: Any = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
HASH_TEXT = sa.String(16)
UNDECODED = sa.text("decode_state = 'undecoded'")


def upgrade() -> None:
    _create_organizations()
    _create_groups()
    _create_devices()
    _create_codecs()
    _create_sessions()
    _create_session_log()
    _create_messages()
    _create_downlinks()


def downgrade() -> None:
    for table in (
        "downlinks",
        "messages",
        "session_log",
        "sessions",
        "codecs",
        "devices",
        "groups",
        "organizations",
    ):
        op.drop_table(table)


def _fk(column: str, table: str, referred: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{referred}.id"], name=op.f(f"fk_{table}_{column}_{referred}")
    )


def _pk(table: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}"))


def _index(table: str, *columns: str) -> None:
    op.create_index(op.f(f"ix_{table}_{'_'.join(columns)}"), table, list(columns))


def _create_organizations() -> None:
    op.create_table(
        "organizations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        _pk("organizations"),
        sa.UniqueConstraint("name", name=op.f("uq_organizations_name")),
    )


def _create_groups() -> None:
    op.create_table(
        "groups",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        _pk("groups"),
        _fk("organization_id", "groups", "organizations"),
        sa.UniqueConstraint("organization_id", "name", name=op.f("uq_groups_organization_id_name")),
    )


def _create_devices() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=True),
        sa.Column("serial", sa.BigInteger(), nullable=False),
        sa.Column("claim_token", sa.LargeBinary(16), nullable=False),
        sa.Column("psk", sa.LargeBinary(32), nullable=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("label", sa.String(100), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("vendor", sa.String(100), nullable=True),
        sa.Column("product", sa.String(100), nullable=True),
        sa.Column("hw_variant", sa.String(100), nullable=True),
        sa.Column("hw_revision", sa.String(100), nullable=True),
        sa.Column("fw_bundle", sa.String(200), nullable=True),
        sa.Column("fw_name", sa.String(100), nullable=True),
        sa.Column("fw_version", sa.String(100), nullable=True),
        sa.Column("modem_fw", sa.String(100), nullable=True),
        sa.Column("imei", sa.String(20), nullable=True),
        sa.Column("imsi", sa.String(20), nullable=True),
        sa.Column("iccid", sa.String(24), nullable=True),
        sa.Column("ble_passkey", sa.String(20), nullable=True),
        sa.Column("attributes", JSON_TYPE, nullable=True),
        sa.Column("decoder_hash", HASH_TEXT, nullable=True),
        sa.Column("encoder_hash", HASH_TEXT, nullable=True),
        sa.Column("config_hash", HASH_TEXT, nullable=True),
        sa.Column("config_lines", JSON_TYPE, nullable=True),
        sa.Column("last_seen_at", UTC_DATETIME, nullable=True),
        sa.Column("session_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("changed_at", UTC_DATETIME, nullable=False),
        sa.Column("deleted_at", UTC_DATETIME, nullable=True),
        _pk("devices"),
        _fk("organization_id", "devices", "organizations"),
        _fk("group_id", "devices", "groups"),
        sa.UniqueConstraint("serial", name=op.f("uq_devices_serial")),
    )
    _index("devices", "changed_at")


def _create_codecs() -> None:
    op.create_table(
        "codecs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("hash", HASH_TEXT, nullable=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("document", JSON_TYPE, nullable=True),
        sa.Column("cbor", sa.LargeBinary(), nullable=True),
        sa.Column("yaml", sa.Text(), nullable=True),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        _pk("codecs"),
        _fk("organization_id", "codecs", "organizations"),
        sa.UniqueConstraint("organization_id", "hash", name=op.f("uq_codecs_organization_id_hash")),
    )


def _create_sessions() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("envelope", sa.String(8), nullable=False),
        sa.Column("remote_address", sa.String(64), nullable=False),
        sa.Column("remote_port", sa.Integer(), nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("last_activity_at", UTC_DATETIME, nullable=False),
        sa.Column("ended_at", UTC_DATETIME, nullable=True),
        sa.Column("end_reason", sa.String(32), nullable=True),
        sa.Column("packets_in", sa.Integer(), server_default="0", nullable=False),
        sa.Column("packets_out", sa.Integer(), server_default="0", nullable=False),
        sa.Column("bytes_in", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("messages_in", sa.Integer(), server_default="0", nullable=False),
        sa.Column("messages_out", sa.Integer(), server_default="0", nullable=False),
        sa.Column("attributes", JSON_TYPE, nullable=True),
        _pk("sessions"),
        _fk("device_id", "sessions", "devices"),
    )
    _index("sessions", "device_id", "started_at")


def _create_session_log() -> None:
    op.create_table(
        "session_log",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("session_id", sa.BigInteger(), nullable=True),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("at", UTC_DATETIME, nullable=False),
        sa.Column("direction", sa.String(4), nullable=False),
        sa.Column("envelope", sa.String(8), nullable=False),
        sa.Column("remote", sa.String(72), nullable=False),
        sa.Column("flags", sa.SmallInteger(), nullable=True),
        sa.Column("seq", sa.SmallInteger(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.String(200), nullable=True),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        _pk("session_log"),
    )
    _index("session_log", "session_id", "at")
    _index("session_log", "device_id", "at")


def _create_messages() -> None:
    op.create_table(
        "messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=True),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.BigInteger(), nullable=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("direction", sa.String(4), nullable=False),
        sa.Column("body", JSON_TYPE, nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("codec_hash", HASH_TEXT, nullable=True),
        sa.Column("decode_state", sa.String(10), nullable=True),
        sa.Column("decode_error", sa.String(200), nullable=True),
        sa.Column("downlink_id", sa.Uuid(), nullable=True),
        _pk("messages"),
    )
    _index("messages", "device_id", "created_at", "id")
    _index("messages", "group_id", "created_at", "id")
    _index("messages", "organization_id", "created_at", "id")
    op.create_index(
        "ix_messages_undecoded",
        "messages",
        ["organization_id", "codec_hash"],
        postgresql_where=UNDECODED,
        sqlite_where=UNDECODED,
    )


def _create_downlinks() -> None:
    op.create_table(
        "downlinks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("request", JSON_TYPE, nullable=False),
        sa.Column("message", sa.LargeBinary(), nullable=False),
        sa.Column("shell_id", sa.LargeBinary(16), nullable=True),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.Column("sent_at", UTC_DATETIME, nullable=True),
        sa.Column("delivered_at", UTC_DATETIME, nullable=True),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.Column("reply_message_id", sa.Uuid(), nullable=True),
        _pk("downlinks"),
        _fk("device_id", "downlinks", "devices"),
        sa.UniqueConstraint("shell_id", name=op.f("uq_downlinks_shell_id")),
    )
    _index("downlinks", "device_id", "state", "created_at")
