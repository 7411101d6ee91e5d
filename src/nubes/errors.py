"""The one error tree of Nubes.

    NubesError
     ├── ConfigError            settings that cannot work together
     ├── ProtocolError          a device sent something we cannot accept
     │    ├── EnvelopeError     MAC envelope: short, serial 0, bad base64
     │    ├── PacketError       FLAP packet: too short, A with data, ...
     │    ├── MessageError      a reassembled message of unknown type or bad value
     │    └── DtlsError         (dtls/) DTLS: NoAssociation, RecordTooLarge; engine to
     │                          server only: HandshakeError(reason), PeerClosed
     ├── CodecError             a codec document or data it cannot (en|de)code
     │    └── CodecHashError    an uploaded codec whose hash does not match
     ├── StoreError             the database refused or is unreachable
     │    └── NotFound          no such device / session / codec
     ├── NotAllowed             the caller's role does not allow the change
     ├── BrokerError            the pipeline did not accept a message in time
     ├── DownlinkError          a downlink that cannot be built for a device
     ├── BackupError            (backup/) a backup that cannot be taken or restored
     │    ├── ArchiveInvalid    not a Nubes backup, damaged (checksum), unknown format
     │    ├── TargetNotEmpty    the restore target holds data (--force) or is in use
     │    ├── BackupIncompatible  a SQLite backup for PostgreSQL, a newer schema
     │    └── ToolMissing       pg_dump / pg_restore not found
     └── (callbacks/)           errors of webhook delivery, defined beside their code:
          TransformError        a JSONata payload that does not compile or evaluate
          RequestError          a request that cannot be built (bad header, URL)
          AddressRefused        a private, loopback or metadata address
          ResolveFailed         a host name that does not resolve
          RequestFailed         no complete answer (reported, never raised out)

Protocol errors carry a short `reason` that goes into the communication log
as the outcome's explanation. Catch broadly only at the edge of a task.
Every error has the `exit_code` the `nubes` command ends with (1 unless a
class says otherwise; the backup errors have their own, so that a scheduled
job can tell a damaged archive from a busy target; see docs/backup.md).
"""

from __future__ import annotations


class NubesError(Exception):
    """Base of every error Nubes raises on purpose."""

    exit_code = 1


class ConfigError(NubesError):
    """The settings cannot work together."""


class ProtocolError(NubesError):
    """Bytes from a device that the protocol does not allow."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EnvelopeError(ProtocolError):
    """A datagram that is not a MAC envelope; it gets no answer."""


class PacketError(ProtocolError):
    """A FLAP packet that does not fit the protocol or the transfer state."""


class MessageError(ProtocolError):
    """A reassembled message of unknown type or invalid value; not acked."""


class CodecError(NubesError):
    """A codec document that is invalid, or data it cannot translate."""


class CodecHashError(CodecError):
    """An uploaded codec whose bytes do not hash to the announced hash."""


class StoreError(NubesError):
    """The database refused an operation or cannot be reached."""


class NotFound(StoreError):
    """The requested object does not exist (in the caller's scope)."""


class NotAllowed(NubesError):
    """The caller's role does not allow this change (found while making it)."""


class BrokerError(NubesError):
    """The broker did not accept or deliver a message."""


class DownlinkError(NubesError):
    """A downlink that cannot be built (no encoder, unknown key, too long)."""


class BackupError(NubesError):
    """A backup that cannot be taken, or an archive that cannot be restored."""


class ArchiveInvalid(BackupError):
    """Not a Nubes backup, damaged (checksum mismatch) or of an unknown format."""

    exit_code = 3


class TargetNotEmpty(BackupError):
    """The database to restore into holds data (and no --force) or is in use."""

    exit_code = 4


class BackupIncompatible(BackupError):
    """An intact backup this database or this version of Nubes cannot take."""

    exit_code = 5


class ToolMissing(BackupError):
    """pg_dump or pg_restore is not installed where Nubes looks for it."""

    exit_code = 6
