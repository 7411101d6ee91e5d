"""Command-line options of `nubes sim`."""

from __future__ import annotations

import argparse


def add_sim_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="the server (default 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=int,
        help="UDP port (default NUBES_FLAP_BASE64_PORT, the raw one with --raw, "
        "NUBES_DTLS_PORT with --dtls)",
    )
    envelope = parser.add_mutually_exclusive_group()
    envelope.add_argument("--raw", action="store_true", help="raw MAC envelope (port 5002)")
    envelope.add_argument(
        "--dtls", action="store_true", help="DTLS envelope (port 5005), one socket per device"
    )
    parser.add_argument("--serial", type=int, default=100_000_001, help="first serial number")
    parser.add_argument("--claim-token", help="32 hex chars for every device (default: per serial)")
    parser.add_argument(
        "--psk", help="DTLS PSK for every device, 16..32 bytes in hex (default: per serial)"
    )
    parser.add_argument(
        "--handshake-timeout",
        type=float,
        default=15.0,
        help="seconds a DTLS handshake may take, retransmissions included (default 15)",
    )
    parser.add_argument("--devices", type=int, default=1, help="how many devices (K)")
    parser.add_argument(
        "--rate", type=float, default=0.5, help="data messages/s of all devices (R)"
    )
    parser.add_argument("--duration", type=float, default=30.0, help="seconds to run (S)")
    parser.add_argument(
        "--messages", type=int, help="stop each device after this many data messages"
    )
    parser.add_argument("--poll-interval", type=float, default=30.0, help="seconds between polls")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for an answer")
    parser.add_argument("--decoder", help="decoder YAML (default: the demo application's)")
    parser.add_argument("--encoder", help="encoder YAML (default: the demo application's)")
    parser.add_argument(
        "--config",
        action="append",
        default=None,
        metavar="LINE",
        help="a config line the device reports (repeatable)",
    )
    parser.add_argument(
        "--add",
        action="store_true",
        help="add missing devices (with claim token and PSK) to the database first",
    )
    parser.add_argument("--group", default="default", help="group of devices added with --add")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
