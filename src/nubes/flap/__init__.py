"""FLAP, the device protocol of HARDWARIO CHESTER, as a sans-IO package.

Bytes in, values and events out: no sockets, no asyncio, no clock (the time
is passed in as `now`). The layers, outermost first:

- `envelope`: the MAC envelope (tag, serial number) and its base64 form;
- `packet`: the 2-byte header with the F/L/A/P flags and the sequence number;
- `transfer`: the cloud's state machine, one per device (fragments, acks,
  polls, duplicates, resets);
- `messages`: uplink parsing and downlink building (type byte + CBOR);
- `device`: a firmware-like device end, for the simulator and tests.

The modules are private in spirit; import from `nubes.flap`.
"""

from nubes.flap.device import (
    DeviceEvent,
    DeviceStep,
    DeviceTransfer,
    DownlinkReceived,
    GaveUp,
    NothingWaiting,
    SequenceReset,
    UplinkAcked,
)
from nubes.flap.envelope import (
    FRAGMENT_LIMIT,
    Envelope,
    decode_base64,
    encode_base64,
    mac_tag,
    open_envelope,
    seal,
    verify,
)
from nubes.flap.messages import (
    MAX_MESSAGE,
    CreateSession,
    GetTimestamp,
    MessageType,
    ShellResult,
    Uplink,
    UploadCodec,
    UploadConfig,
    UploadData,
    UploadFirmware,
    UploadShell,
    UploadStats,
    encode_download_config,
    encode_download_data,
    encode_download_shell,
    encode_set_session,
    encode_set_timestamp,
    parse_uplink,
)
from nubes.flap.packet import MAX_SEQ, RESET, A, F, L, P, Packet, flag_text, next_seq
from nubes.flap.transfer import (
    MAX_REASSEMBLY,
    REPEAT_RESET_SECONDS,
    DownlinkDelivered,
    DownlinkSent,
    Event,
    MessageReceived,
    Outcome,
    Restarted,
    Step,
    Transfer,
    TransferState,
)

__all__ = [
    "FRAGMENT_LIMIT",
    "MAX_MESSAGE",
    "MAX_REASSEMBLY",
    "MAX_SEQ",
    "REPEAT_RESET_SECONDS",
    "RESET",
    "A",
    "CreateSession",
    "DeviceEvent",
    "DeviceStep",
    "DeviceTransfer",
    "DownlinkDelivered",
    "DownlinkReceived",
    "DownlinkSent",
    "Envelope",
    "Event",
    "F",
    "GaveUp",
    "GetTimestamp",
    "L",
    "MessageReceived",
    "MessageType",
    "NothingWaiting",
    "Outcome",
    "P",
    "Packet",
    "Restarted",
    "SequenceReset",
    "ShellResult",
    "Step",
    "Transfer",
    "TransferState",
    "Uplink",
    "UplinkAcked",
    "UploadCodec",
    "UploadConfig",
    "UploadData",
    "UploadFirmware",
    "UploadShell",
    "UploadStats",
    "decode_base64",
    "encode_base64",
    "encode_download_config",
    "encode_download_data",
    "encode_download_shell",
    "encode_set_session",
    "encode_set_timestamp",
    "flag_text",
    "mac_tag",
    "next_seq",
    "open_envelope",
    "parse_uplink",
    "seal",
    "verify",
]
