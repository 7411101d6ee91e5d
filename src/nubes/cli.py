"""The `nubes` command.

    nubes serve                       everything in one process (embedded defaults)
    nubes gateway | worker | api      one part, for production (RabbitMQ between them)
    nubes dispatcher                  the callback dispatcher alone (needs RabbitMQ)
    nubes migrate [--post-deploy]     apply database migrations (then the post-deploy steps)
    nubes backup | restore            archive the database, or put an archive back
    nubes device add|list|show        manage devices
    nubes downlink config|shell|data  queue downlinks (also: list, cancel)
    nubes messages|sessions|log       read what devices sent
    nubes user create                 add a user to an organization
    nubes apikey create               make an API key (prints only the key)
    nubes sim                         a CHESTER-like device simulator

Every command reads its configuration from NUBES_* variables (see
docs/configuration.md) and works against whatever NUBES_DATABASE_URL points
to, also while `nubes serve` runs. Output meant for scripts is JSON with
`--json`: one object per line.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import uvloop
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from nubes import __version__
from nubes.config import Settings, configuration_problems
from nubes.errors import ConfigError, NubesError
from nubes.logs import configure_logging
from nubes.services import devices, downlinks, queries
from nubes.store.database import Database

log = logging.getLogger("nubes")

HEALTHCHECK_TIMEOUT = 4.0

Command = Callable[[argparse.Namespace, Settings], Awaitable[int]]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "command"):
        getattr(args, "group_parser", parser).print_help()
        return 2
    try:
        settings = Settings()
    except ValidationError as err:
        print(f"nubes: invalid configuration: {configuration_problems(err)}", file=sys.stderr)
        return 2
    except ConfigError as err:
        print(f"nubes: invalid configuration: {err}", file=sys.stderr)
        return 2
    configure_logging(settings)
    try:
        code: int = uvloop.run(args.command(args, settings))
        return code
    except BrokenPipeError:  # e.g. `nubes messages ... | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps Python quiet at exit
        return 0
    except NubesError as err:
        print(f"nubes: {err}", file=sys.stderr)
        return err.exit_code
    except ValueError as err:
        print(f"nubes: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


# -- long-running processes ---------------------------------------------------------


async def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    return await _run(settings, gateway=True, worker=True, api=True, dispatcher=True)


async def cmd_gateway(args: argparse.Namespace, settings: Settings) -> int:
    return await _run(settings, gateway=True, worker=False)


async def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    return await _run(settings, gateway=False, worker=True)


async def cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    return await _run(settings, gateway=False, worker=False, api=True)


async def cmd_dispatcher(args: argparse.Namespace, settings: Settings) -> int:
    return await _run(settings, gateway=False, worker=False, dispatcher=True)


async def _run(
    settings: Settings,
    *,
    gateway: bool,
    worker: bool,
    api: bool = False,
    dispatcher: bool = False,
) -> int:
    from nubes.bootstrap import Runtime, build_adapters  # heavy: only for servers

    adapters = build_adapters(settings)
    if adapters.database.is_sqlite:
        await adapters.database.migrate()
    runtime = Runtime(settings, adapters)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runtime.start(gateway=gateway, worker=worker, api=api, dispatcher=dispatcher)
        # What start-up made lives for the whole run: keep the collector from
        # walking it again at every full collection (pauses delay acks).
        gc.collect()
        gc.freeze()
        log.info(
            "database: %s", make_url(settings.database_url).render_as_string(hide_password=True)
        )
        log.info(
            "nubes %s running (gateway=%s, worker=%s, api=%s, dispatcher=%s)",
            __version__,
            gateway,
            worker,
            api,
            dispatcher,
        )
        await stop.wait()
        log.info("stopping")
    finally:
        await runtime.stop()
    return 0


async def cmd_healthcheck(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0 when the local process answers its probe (container health checks)."""
    import urllib.error
    import urllib.request

    if settings.ops_port:
        url = f"http://127.0.0.1:{settings.ops_port}/{'ready' if args.ready else 'health'}"
    else:  # no ops port: only the API's liveness can be asked
        url = f"http://127.0.0.1:{settings.http_port}/health"

    def probe() -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(url, timeout=HEALTHCHECK_TIMEOUT) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    try:
        status, body = await asyncio.to_thread(probe)
    except OSError as err:
        print(f"nubes: {url}: {err}", file=sys.stderr)
        return 1
    print(body.decode(errors="replace"))
    return 0 if status == 200 else 1


async def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    database = Database(settings.database_url)
    try:
        await database.migrate()
        print(f"database at revision {await database.current_revision()}")
        if args.post_deploy:
            report = await database.post_deploy()
            if report.converted and report.boundary is not None:
                print(f"messages partitioned by month (older rows before {report.boundary.date()})")
            for name in report.months_added:
                print(f"added partition {name}")
    finally:
        await database.dispose()
    return 0


async def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    from nubes.backup import take_backup

    output = Path(args.output or settings.backup_dir)
    result = await take_backup(settings, output, keep=args.keep)
    manifest = result.manifest
    log.info(
        "backup of the %s database at revision %s: %s, %d bytes in %.1f s",
        manifest.database_kind,
        manifest.alembic_revision,
        result.path,
        result.path.stat().st_size,
        result.seconds,
    )
    for path in result.pruned:
        log.info("pruned %s", path)
    print(result.path)  # only the path: `ARCHIVE=$(nubes backup)`
    return 0


async def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    from nubes.backup import restore_backup, verify_backup

    if args.verify_only:
        manifest = await verify_backup(settings, Path(args.file))
        print(
            f"{args.file}: intact {manifest.database_kind} backup of {manifest.created_at}, "
            f"revision {manifest.alembic_revision}, Nubes {manifest.nubes_version}"
        )
        return 0
    result = await restore_backup(settings, Path(args.file), force=args.force)
    print(
        f"restored {args.file} (backup of {result.manifest.created_at}, revision "
        f"{result.manifest.alembic_revision}); database at revision {result.revision} "
        f"in {result.seconds:.1f} s"
    )
    return 0


# -- devices -----------------------------------------------------------------------------


async def _database(settings: Settings) -> Database:
    """The database; the embedded one is migrated first, so a fresh clone just works."""
    database = Database(settings.database_url)
    if database.is_sqlite:
        await database.migrate()
    return database


async def cmd_device_add(args: argparse.Namespace, settings: Settings) -> int:
    serial = devices.parse_serial(args.serial)
    token = devices.parse_hex_secret(args.claim_token, name="claim token", sizes=range(16, 17))
    psk = None
    if args.psk:
        psk = devices.parse_hex_secret(args.psk, name="PSK", sizes=range(16, 33))
    database = await _database(settings)
    try:
        device = await devices.add_device(
            database.engine,
            serial=serial,
            claim_token=token,
            name=args.name,
            group=args.group,
            psk=psk,
            organization=args.org,
        )
    finally:
        await database.dispose()
    _emit(args, [device], ("serial", "name", "group", "id"))
    return 0


async def cmd_device_list(args: argparse.Namespace, settings: Settings) -> int:
    database = await _database(settings)
    try:
        rows = await devices.list_devices(database.engine)
    finally:
        await database.dispose()
    _emit(args, rows, ("serial", "name", "group", "enabled", "last_seen_at", "fw_version"))
    return 0


async def cmd_device_psk(args: argparse.Namespace, settings: Settings) -> int:
    psk = devices.parse_hex_secret(args.psk, name="PSK", sizes=range(16, 33)) if args.psk else None
    database = await _database(settings)
    try:
        device = await devices.set_psk(
            database.engine, devices.parse_serial(args.serial), psk, args.grace_seconds
        )
    finally:
        await database.dispose()
    until = device.get("psk_previous_until")
    kept = f"; the previous PSK stays valid until {until:%Y-%m-%d %H:%M:%S} UTC" if until else ""
    print(f"{'PSK set' if psk else 'PSK removed'} for serial {device['serial']}{kept}")
    return 0


async def cmd_device_show(args: argparse.Namespace, settings: Settings) -> int:
    database = await _database(settings)
    try:
        device = await devices.get_device(database.engine, devices.parse_serial(args.serial))
    finally:
        await database.dispose()
    print(json.dumps(_plain(device), indent=None if args.json else 2))
    return 0


# -- downlinks ------------------------------------------------------------------------------


async def cmd_downlink(args: argparse.Namespace, settings: Settings) -> int:
    database = await _database(settings)
    engine, days = database.engine, settings.downlink_expiry_days
    try:
        if args.kind == "list":
            rows = await downlinks.list_downlinks(
                engine, devices.parse_serial(args.serial), limit=args.limit
            )
            _emit(args, rows, ("id", "kind", "state", "attempts", "created_at", "request"))
            return 0
        if args.kind == "cancel":
            cancelled = await downlinks.cancel_downlink(engine, uuid.UUID(args.id))
            print("cancelled" if cancelled else "already delivered, cancelled or expired")
            return 0 if cancelled else 1
        serial = devices.parse_serial(args.serial)
        if args.kind == "config":
            row = await downlinks.queue_config(engine, serial, args.lines, days)
        elif args.kind == "shell":
            row = await downlinks.queue_shell(engine, serial, args.commands, days)
        else:
            row = await downlinks.queue_data(engine, serial, _json_object(args.data), days)
    finally:
        await database.dispose()
    _emit(args, [row], ("id", "kind", "state", "request"))
    return 0


def _json_object(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("downlink data must be a JSON object")
    return value


# -- reading --------------------------------------------------------------------------------


async def cmd_messages(args: argparse.Namespace, settings: Settings) -> int:
    database = await _database(settings)
    try:
        rows = await queries.device_messages(
            database.engine,
            devices.parse_serial(args.serial),
            type_name=args.type,
            limit=args.limit,
        )
    finally:
        await database.dispose()
    _emit(args, rows, ("created_at", "type", "direction", "session_id", "body"))
    return 0


async def cmd_sessions(args: argparse.Namespace, settings: Settings) -> int:
    database = await _database(settings)
    try:
        rows = await queries.device_sessions(
            database.engine, devices.parse_serial(args.serial), limit=args.limit
        )
    finally:
        await database.dispose()
    _emit(
        args, rows, ("id", "started_at", "envelope", "remote_address", "packets_in", "packets_out")
    )
    return 0


async def cmd_log(args: argparse.Namespace, settings: Settings) -> int:
    database = await _database(settings)
    try:
        if args.session is not None:
            rows = await queries.session_log(database.engine, args.session, limit=args.limit)
        else:
            serial = devices.parse_serial(args.serial)
            rows = await queries.device_log(database.engine, serial, limit=args.limit)
    finally:
        await database.dispose()
    _emit(args, rows, ("at", "direction", "flag_text", "seq", "size", "outcome", "detail"))
    return 0


async def cmd_sim(args: argparse.Namespace, settings: Settings) -> int:
    from nubes.sim.runner import run_simulation

    return await run_simulation(args, settings)


# -- output ---------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k not in devices.SECRET_COLUMNS}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _emit(args: argparse.Namespace, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    if getattr(args, "json", False):
        for row in rows:
            print(json.dumps(_plain(row), separators=(",", ":")))
        return
    for row in rows:
        plain = _plain(row)
        print("  ".join(f"{name}={json.dumps(plain.get(name))}" for name in columns))


# -- users and API keys --------------------------------------------------------------


async def cmd_user_create(args: argparse.Namespace, settings: Settings) -> int:
    from nubes.services import auth

    database = await _database(settings)
    try:
        user = await auth.create_user(
            database.engine,
            email=args.email,
            password=args.password,
            organization=args.org,
            role=args.role,
        )
    finally:
        await database.dispose()
    _emit(args, [user], ["id", "email", "organization_id", "role"])
    return 0


async def cmd_apikey_create(args: argparse.Namespace, settings: Settings) -> int:
    from nubes.services import auth

    database = await _database(settings)
    try:
        key = await auth.create_api_key(
            database.engine, organization=args.org, scope=args.scope, name=args.name
        )
    finally:
        await database.dispose()
    print(key["key"])  # only the key: `KEY=$(nubes apikey create)`
    return 0


# -- the parser -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nubes", description="Nubes IoT device cloud")
    parser.add_argument("--version", action="version", version=f"nubes {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND")
    _simple(
        sub,
        "serve",
        cmd_serve,
        "gateway, worker, callback dispatcher and API in one process; migrates SQLite",
    )
    _simple(sub, "gateway", cmd_gateway, "the UDP gateway alone (needs RabbitMQ)")
    _simple(sub, "worker", cmd_worker, "a pipeline worker alone (needs RabbitMQ)")
    _simple(sub, "api", cmd_api, "the REST API alone (stateless: run as many as needed)")
    _simple(
        sub,
        "dispatcher",
        cmd_dispatcher,
        "the callback dispatcher alone (needs RabbitMQ; run as many as needed)",
    )
    migrate = _simple(sub, "migrate", cmd_migrate, "apply database migrations")
    migrate.add_argument(
        "--post-deploy",
        action="store_true",
        help="then the steps that need every process at this release "
        "(PostgreSQL: partition messages by month, online)",
    )
    probe = _simple(sub, "healthcheck", cmd_healthcheck, "probe this host's Nubes process")
    probe.add_argument(
        "--ready", action="store_true", help="readiness (/ready on NUBES_OPS_PORT), not liveness"
    )
    _backup_parsers(sub)
    _device_parser(sub)
    _downlink_parser(sub)
    _reading_parsers(sub)
    _access_parsers(sub)
    sim = sub.add_parser("sim", help="simulate CHESTER devices")
    from nubes.sim.options import add_sim_arguments

    add_sim_arguments(sim)
    sim.set_defaults(command=cmd_sim)
    return parser


def _simple(sub: Any, name: str, command: Command, help_text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
    parser.set_defaults(command=command)
    return parser


def _backup_parsers(sub: Any) -> None:
    backup = _simple(sub, "backup", cmd_backup, "write a backup archive of the database")
    backup.add_argument(
        "--output",
        metavar="DIR|FILE.tar",
        help="a folder for nubes-backup-<UTC time>.tar, or the archive's name "
        "(default NUBES_BACKUP_DIR, ./var/backups)",
    )
    backup.add_argument(
        "--keep",
        type=_positive,
        metavar="N",
        help="then delete all but the newest N nubes-backup-*.tar in that folder",
    )
    restore = _simple(sub, "restore", cmd_restore, "replace the database by a backup's")
    restore.add_argument("file", metavar="FILE", help="an archive made by `nubes backup`")
    which = restore.add_mutually_exclusive_group()
    which.add_argument(
        "--force", action="store_true", help="replace a database that holds data (drops it)"
    )
    which.add_argument(
        "--verify-only",
        action="store_true",
        help="check the archive in full (checksum, dump readable) and touch no database",
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _device_parser(sub: Any) -> None:
    group = sub.add_parser("device", help="manage devices")
    group.set_defaults(group_parser=group)
    device = group.add_subparsers(metavar="ACTION")
    add = _simple(device, "add", cmd_device_add, "add a device")
    add.add_argument("--serial", required=True, help="serial number (HSN, uint32)")
    add.add_argument("--claim-token", required=True, help="32 hex characters (the MAC key)")
    add.add_argument("--name")
    add.add_argument("--group", default=devices.DEFAULT_GROUP)
    add.add_argument("--org", default=devices.DEFAULT_ORGANIZATION)
    add.add_argument("--psk", help="DTLS pre-shared key, 16..32 bytes in hex")
    add.add_argument("--json", action="store_true")
    listing = _simple(device, "list", cmd_device_list, "list devices")
    listing.add_argument("--json", action="store_true")
    psk = _simple(device, "psk", cmd_device_psk, "set, change or remove a device's DTLS PSK")
    psk.add_argument("--serial", required=True)
    psk.add_argument("--psk", default="", help='16..32 bytes in hex; "" removes the PSK')
    psk.add_argument(
        "--grace-seconds",
        type=int,
        default=None,
        help="how long the replaced PSK stays valid (default 7 days; 0: invalid at once)",
    )
    show = _simple(device, "show", cmd_device_show, "show one device")
    show.add_argument("--serial", required=True)
    show.add_argument("--json", action="store_true")


def _downlink_parser(sub: Any) -> None:
    group = sub.add_parser("downlink", help="queue, list and cancel downlinks")
    group.set_defaults(group_parser=group)
    downlink = group.add_subparsers(metavar="KIND")
    config = _simple(downlink, "config", cmd_downlink, "queue config lines")
    config.add_argument("--serial", required=True)
    config.add_argument("lines", nargs="+", metavar="LINE")
    shell = _simple(downlink, "shell", cmd_downlink, "queue a shell command")
    shell.add_argument("--serial", required=True)
    shell.add_argument("commands", nargs="+", metavar="COMMAND", help="one command per argument")
    data = _simple(downlink, "data", cmd_downlink, "queue data for the device's encoder")
    data.add_argument("--serial", required=True)
    data.add_argument("data", metavar="JSON")
    listing = _simple(downlink, "list", cmd_downlink, "list a device's downlinks, newest first")
    listing.add_argument("--serial", required=True)
    listing.add_argument("--limit", type=int, default=50)
    cancel = _simple(downlink, "cancel", cmd_downlink, "cancel a downlink not yet delivered")
    cancel.add_argument("--id", required=True)
    for name, parser in (
        ("config", config),
        ("shell", shell),
        ("data", data),
        ("list", listing),
        ("cancel", cancel),
    ):
        parser.set_defaults(kind=name)
        parser.add_argument("--json", action="store_true")


def _reading_parsers(sub: Any) -> None:
    messages = _simple(sub, "messages", cmd_messages, "a device's messages, newest first")
    messages.add_argument("--serial", required=True)
    messages.add_argument("--type")
    messages.add_argument("--limit", type=int, default=20)
    messages.add_argument("--json", action="store_true")
    sessions = _simple(sub, "sessions", cmd_sessions, "a device's sessions, newest first")
    sessions.add_argument("--serial", required=True)
    sessions.add_argument("--limit", type=int, default=20)
    sessions.add_argument("--json", action="store_true")
    packets = _simple(sub, "log", cmd_log, "the communication log of a session or a device")
    which = packets.add_mutually_exclusive_group(required=True)
    which.add_argument("--session", type=int, help="a session id (see `nubes sessions`)")
    which.add_argument("--serial", help="a device: its latest datagrams, in any session")
    packets.add_argument("--limit", type=int, default=1000)
    packets.add_argument("--json", action="store_true")


def _access_parsers(sub: Any) -> None:
    from nubes.services.auth import ROLES, SCOPES

    user_group = sub.add_parser("user", help="manage users")
    user_group.set_defaults(group_parser=user_group)
    user = user_group.add_subparsers(metavar="ACTION")
    create = _simple(user, "create", cmd_user_create, "create a user in an organization")
    create.add_argument("--email", required=True)
    create.add_argument("--password", required=True, help="at least 8 characters")
    create.add_argument("--org", default=devices.DEFAULT_ORGANIZATION, help="created if new")
    create.add_argument("--role", default="member", choices=ROLES)
    create.add_argument("--json", action="store_true")
    key_group = sub.add_parser("apikey", help="manage API keys")
    key_group.set_defaults(group_parser=key_group)
    key = key_group.add_subparsers(metavar="ACTION")
    new = _simple(key, "create", cmd_apikey_create, "create an API key; prints only the key")
    new.add_argument("--org", default=devices.DEFAULT_ORGANIZATION, help="created if new")
    new.add_argument("--scope", default="read", choices=SCOPES)
    new.add_argument("--name", default="", help="to recognise the key later")


if __name__ == "__main__":
    sys.exit(main())
