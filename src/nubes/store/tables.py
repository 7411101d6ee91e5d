"""The database schema, as SQLAlchemy Core tables.

Core rather than ORM classes: the hot path inserts messages and log rows in
batches of hundreds (`insert(...)` with a list of dicts becomes one
multi-row statement), and reads are simple projections. The same metadata
drives the Alembic migrations, which must run on SQLite (embedded) and
PostgreSQL (production), so only portable types are used:

- ids are UUIDs (`Uuid`: native on PostgreSQL, 32 hex chars on SQLite),
  except sessions, whose id is the uint32 the device is told in SET_SESSION;
- codec and config hashes are 16 lowercase hex characters (a uint64 does
  not fit a signed BIGINT);
- times are timezone-aware UTC (`UTCDateTime` makes SQLite give them back
  aware too);
- JSON is JSONB on PostgreSQL.

Indexes serve the reads that must stay fast at 10 million messages: "latest
N messages of a device / of a group" walk `(device_id, created_at, id)` and
`(group_id, created_at, id)` backwards; undecoded data waiting for its codec
is found through a partial index.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Python None is SQL NULL (not JSON null), the same whether a row comes in
# through an INSERT or PostgreSQL's COPY.
JSONType: Any = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigIntId: Any = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
HashText = sa.String(16)

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _created_at() -> sa.Column[datetime]:
    return sa.Column("created_at", UTCDateTime(), nullable=False)


organizations = sa.Table(
    "organizations",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    _created_at(),
    # Messages, their deliveries and the communication log older than this
    # are deleted (`nubes.store.retention`).
    sa.Column("message_retention_days", sa.Integer(), nullable=False, server_default="90"),
    sa.CheckConstraint("message_retention_days BETWEEN 1 AND 3650", name="message_retention_days"),
)

groups = sa.Table(
    "groups",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("organization_id", sa.Uuid(), sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    _created_at(),
    sa.Column("updated_at", UTCDateTime(), nullable=True),
    sa.UniqueConstraint("organization_id", "name"),
)

devices = sa.Table(
    "devices",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("organization_id", sa.Uuid(), sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("group_id", sa.Uuid(), sa.ForeignKey("groups.id"), nullable=True),
    sa.Column("serial", sa.BigInteger(), nullable=False, unique=True),
    # The MAC key: the gateway must read it back, so it cannot be hashed.
    sa.Column("claim_token", sa.LargeBinary(16), nullable=False),
    sa.Column("psk", sa.LargeBinary(32), nullable=True),
    # The PSK a change replaced stays valid until then (gapless rotation).
    sa.Column("psk_previous", sa.LargeBinary(32), nullable=True),
    sa.Column("psk_previous_until", UTCDateTime(), nullable=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("label", sa.String(100), nullable=True),
    sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
    # What the last CREATE_SESSION told.
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
    sa.Column("attributes", JSONType, nullable=True),
    sa.Column("decoder_hash", HashText, nullable=True),
    sa.Column("encoder_hash", HashText, nullable=True),
    sa.Column("config_hash", HashText, nullable=True),
    sa.Column("config_lines", JSONType, nullable=True),
    sa.Column("last_seen_at", UTCDateTime(), nullable=True),
    sa.Column("session_id", sa.BigInteger(), nullable=True),
    _created_at(),
    # Bumped by users (CLI, API) when something the gateway needs changes:
    # keys, enabled, name, group, a new downlink. Device traffic never bumps it,
    # so the gateway's refresh query ("changed since") stays small.
    sa.Column("changed_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("deleted_at", UTCDateTime(), nullable=True),
)

codecs = sa.Table(
    "codecs",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    # Codecs uploaded by devices belong to the device's organization: a
    # 64-bit hash can be collided on purpose, so one tenant must not be able
    # to plant a codec that decodes another tenant's data.
    sa.Column("organization_id", sa.Uuid(), sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("hash", HashText, nullable=True),
    sa.Column("kind", sa.String(8), nullable=False),  # decoder | encoder
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("note", sa.Text(), nullable=True),
    sa.Column("document", JSONType, nullable=True),  # the YAML document as loaded
    sa.Column("cbor", sa.LargeBinary(), nullable=True),  # the bytes the hash covers
    sa.Column("yaml", sa.Text(), nullable=True),
    sa.Column("source", sa.String(8), nullable=False),  # device | user
    # v1 compatibility: cbor | protobuf | javascript, and who wrote it.
    sa.Column("decoder_type", sa.String(16), nullable=True),
    sa.Column("author_ids", JSONType, nullable=True),
    _created_at(),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("organization_id", "hash"),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("device_id", sa.Uuid(), sa.ForeignKey("devices.id"), nullable=False),
    sa.Column("organization_id", sa.Uuid(), nullable=False),
    sa.Column("envelope", sa.String(8), nullable=False),  # raw | base64 | dtls
    sa.Column("remote_address", sa.String(64), nullable=False),
    sa.Column("remote_port", sa.Integer(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("last_activity_at", UTCDateTime(), nullable=False),
    sa.Column("ended_at", UTCDateTime(), nullable=True),
    sa.Column("end_reason", sa.String(32), nullable=True),
    sa.Column("packets_in", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("packets_out", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("bytes_in", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("bytes_out", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("messages_in", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("messages_out", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("attributes", JSONType, nullable=True),
    sa.Index(None, "device_id", "started_at"),
)

session_log = sa.Table(
    "session_log",
    metadata,
    sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
    sa.Column("session_id", sa.BigInteger(), nullable=True),
    sa.Column("device_id", sa.Uuid(), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("direction", sa.String(4), nullable=False),  # in | out
    sa.Column("envelope", sa.String(8), nullable=False),
    sa.Column("remote", sa.String(72), nullable=False),  # address:port
    sa.Column("flags", sa.SmallInteger(), nullable=True),
    sa.Column("seq", sa.SmallInteger(), nullable=True),
    sa.Column("size", sa.Integer(), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("detail", sa.String(200), nullable=True),
    sa.Column("message_id", sa.Uuid(), nullable=True),
    # A session's log is read in time order (rows arrive in batches that
    # workers may commit in any order, so ids do not follow the exchange).
    sa.Index(None, "session_id", "at"),
    sa.Index(None, "device_id", "at"),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("organization_id", sa.Uuid(), nullable=False),
    sa.Column("group_id", sa.Uuid(), nullable=True),
    sa.Column("device_id", sa.Uuid(), nullable=False),
    sa.Column("session_id", sa.BigInteger(), nullable=True),
    # session data config decoder encoder stats shell firmware timestamp
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("direction", sa.String(4), nullable=False),  # up | down
    sa.Column("body", JSONType, nullable=True),
    sa.Column("raw", sa.LargeBinary(), nullable=False),
    sa.Column("codec_hash", HashText, nullable=True),
    # data only: decoded | undecoded (codec not known yet) | failed
    sa.Column("decode_state", sa.String(10), nullable=True),
    sa.Column("decode_error", sa.String(200), nullable=True),
    sa.Column("downlink_id", sa.Uuid(), nullable=True),
    sa.Index(None, "device_id", "created_at", "id"),
    sa.Index(None, "group_id", "created_at", "id"),
    sa.Index(None, "organization_id", "created_at", "id"),
    sa.Index(
        "ix_messages_undecoded",
        "organization_id",
        "codec_hash",
        postgresql_where=sa.text("decode_state = 'undecoded'"),
        sqlite_where=sa.text("decode_state = 'undecoded'"),
    ),
)

downlinks = sa.Table(
    "downlinks",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("organization_id", sa.Uuid(), nullable=False),
    sa.Column("device_id", sa.Uuid(), sa.ForeignKey("devices.id"), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),  # config | shell | data
    sa.Column("request", JSONType, nullable=False),  # lines, commands or the JSON data
    sa.Column("message", sa.LargeBinary(), nullable=False),  # the FLAP message to send
    sa.Column("shell_id", sa.LargeBinary(16), nullable=True, unique=True),
    # pending -> sent -> delivered | cancelled | expired
    sa.Column("state", sa.String(10), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    _created_at(),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("sent_at", UTCDateTime(), nullable=True),
    sa.Column("delivered_at", UTCDateTime(), nullable=True),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Column("reply_message_id", sa.Uuid(), nullable=True),
    sa.Index(None, "device_id", "state", "created_at"),
)

# A batch of the pipeline, once stored: a redelivered batch is skipped whole.
pipeline_batches = sa.Table(
    "pipeline_batches",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("stored_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("announced_at", UTCDateTime(), nullable=True),
)

# People. Passwords are argon2 hashes; the TOTP secret must be read back to
# check a code, so it is stored as is (base32) and never returned.
users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("email", sa.String(254), nullable=False, unique=True),  # lowercased
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("password_hash", sa.Text(), nullable=False),
    sa.Column("totp_secret", sa.String(64), nullable=True),
    sa.Column("totp_enabled", sa.Boolean(), nullable=False, server_default=sa.false()),
    # The last time step whose code was accepted: a code works only once.
    sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
    sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
    _created_at(),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("last_login_at", UTCDateTime(), nullable=True),
)

# A user's role in an organization: owner | admin | member | viewer.
memberships = sa.Table(
    "memberships",
    metadata,
    sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("organization_id", sa.Uuid(), sa.ForeignKey("organizations.id"), primary_key=True),
    sa.Column("role", sa.String(8), nullable=False),
    _created_at(),
    sa.Index(None, "organization_id"),
)

# Keys are 256-bit random strings: a SHA-256 of the whole key is enough to
# find and check one (argon2 is for guessable secrets). `prefix` is the
# visible start of the key, so people can tell their keys apart.
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("organization_id", sa.Uuid(), sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("scope", sa.String(8), nullable=False),  # read | write | admin
    sa.Column("created_by", sa.Uuid(), nullable=True),
    _created_at(),
    sa.Column("last_used_at", UTCDateTime(), nullable=True),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
    sa.Index(None, "organization_id"),
)

# Sign-in tokens (opaque, hashed like API keys); logout revokes one.
access_tokens = sa.Table(
    "access_tokens",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
    _created_at(),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
    sa.Index(None, "user_id"),
)

# Who changed what, per organization; never holds a secret's value.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
    sa.Column("organization_id", sa.Uuid(), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("actor_type", sa.String(8), nullable=False),  # user | api_key | system
    sa.Column("actor_id", sa.Uuid(), nullable=True),
    sa.Column("actor_label", sa.String(254), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),  # e.g. device.update
    sa.Column("object_type", sa.String(32), nullable=False),
    sa.Column("object_id", sa.String(64), nullable=True),
    sa.Column("details", JSONType, nullable=True),
    sa.Index(None, "organization_id", "at"),
)

# Webhooks of a group. `secret` signs requests (HMAC), so it must be read
# back: stored as is, never returned by the API. `version` grows with every
# change, so dispatchers know when to compile the payload again.
callbacks = sa.Table(
    "callbacks",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("organization_id", sa.Uuid(), sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("group_id", sa.Uuid(), sa.ForeignKey("groups.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("note", sa.Text(), nullable=True),
    sa.Column("method", sa.String(8), nullable=False),  # POST GET PUT PATCH
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("query_params", JSONType, nullable=False),  # [{"name", "value"}]
    sa.Column("headers", JSONType, nullable=False),  # [{"name", "value"}]
    sa.Column("content_type", sa.String(40), nullable=False),
    sa.Column("payload", sa.Text(), nullable=False),  # JSONata; "" = the message as-is
    sa.Column("triggers", JSONType, nullable=False),  # message types, e.g. ["data"]
    sa.Column("timeout", sa.Float(), nullable=False),  # seconds
    sa.Column("retry_delays", JSONType, nullable=False),  # seconds, one per retry
    sa.Column("secret", sa.String(200), nullable=True),
    sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
    _created_at(),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("deleted_at", UTCDateTime(), nullable=True),
    # Health, kept by the dispatchers.
    sa.Column("last_success_at", UTCDateTime(), nullable=True),
    sa.Column("last_failure_at", UTCDateTime(), nullable=True),
    sa.Column("failure_streak", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("paused_until", UTCDateTime(), nullable=True),  # the circuit breaker
    sa.Index(None, "group_id"),
    sa.Index(None, "updated_at"),
)

# One per message and callback: the unit of delivery, durable across
# restarts. The unique pair makes an event announced twice deliver once.
# pending -> delivering -> succeeded | pending (retry) | failed; skipped when
# the payload is undefined or null.
deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("organization_id", sa.Uuid(), nullable=False),
    sa.Column("callback_id", sa.Uuid(), sa.ForeignKey("callbacks.id"), nullable=False),
    sa.Column("message_id", sa.Uuid(), nullable=False),
    sa.Column("state", sa.String(10), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
    # A dispatcher that took the delivery holds it until then (a crash frees it).
    sa.Column("lease_until", UTCDateTime(), nullable=True),
    sa.Column("last_status", sa.Integer(), nullable=True),
    sa.Column("last_error", sa.String(500), nullable=True),
    _created_at(),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("callback_id", "message_id"),
    sa.Index(None, "state", "next_attempt_at"),
    sa.Index(None, "message_id"),
    sa.Index(None, "callback_id", "created_at"),
)

# Every attempt of a delivery: what was sent (secrets redacted, body cut at
# 4 KB) and what came back.
delivery_attempts = sa.Table(
    "delivery_attempts",
    metadata,
    sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.Uuid(), nullable=False),
    sa.Column("callback_id", sa.Uuid(), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("duration_ms", sa.Float(), nullable=True),
    sa.Column("outcome", sa.String(12), nullable=False),  # success failure skipped
    sa.Column("request", JSONType, nullable=True),  # method, url, headers, body
    sa.Column("response", JSONType, nullable=True),  # status, headers, body
    sa.Column("error", sa.String(500), nullable=True),
    sa.Index(None, "delivery_id", "at"),
    sa.Index(None, "callback_id", "at"),
)
