"""The `autokey` command line.

Exit status: 0 success; 1 the command ran but did not succeed (a failed smoke run, an unknown
token to revoke); 2 invalid configuration or usage; 3 the database is missing, unreachable or
not migrated; 4 `serve` cannot listen because the address is in use.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import structlog
from aiohttp import web

from autokey import __version__
from autokey.domain.model.auth import Principal, Role
from autokey.domain.model.errors import NotFound, StoreUnavailable
from autokey.domain.model.ids import PoolId, SubjectId, TokenId
from autokey.entrypoints import bootstrap
from autokey.entrypoints.bootstrap import EXIT_ADDRESS_IN_USE, EXIT_CONFIG, StartupRefused
from autokey.entrypoints.logging import configure_logging
from autokey.entrypoints.settings import Settings, SettingsError, StoreKind, load_settings

log = structlog.get_logger("autokey.cli")

DESCRIPTION = """autokey: the backend of a digital game key marketplace.
Configuration comes from the environment (see .env.example); with none, autokey uses the
SQLite file ./autokey.db and a development key file beside it."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autokey", description=DESCRIPTION, epilog=__doc__.split("\n\n", 1)[1]
    )
    parser.add_argument("--version", action="version", version=f"autokey {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument(
        "--host", help="address to listen on (default: AUTOKEY_HOST, else 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=int, help="port to listen on (default: AUTOKEY_PORT, else 8080)"
    )
    sub.add_parser(
        "migrate",
        help="apply pending database migrations (in development, creating a missing "
        "PostgreSQL database first)",
    )
    sub.add_parser("sweep", help="expire reservations, announce stock crossings, once (for cron)")
    token = sub.add_parser("token", help="create, list or revoke API tokens").add_subparsers(
        dest="token_command", required=True, metavar="ACTION"
    )
    create = token.add_parser("create", help="create a token and print it once as JSON")
    create.add_argument(
        "--role", choices=[r.value for r in Role], required=True, help="what the token may do"
    )
    create.add_argument(
        "--subject",
        type=uuid.UUID,
        help="the seller or buyer id the token acts as (default: a new id)",
    )
    create.add_argument("--name", default="", help="a label to recognise the token by")
    token.add_parser("list", help="list tokens as JSON lines (never their secrets)")
    revoke = token.add_parser("revoke", help="revoke a token by its id (401 from then on)")
    revoke.add_argument("token_id", type=uuid.UUID, help="the id printed by `token create`")
    audit = sub.add_parser("audit", help="read the audit log").add_subparsers(
        dest="audit_command", required=True, metavar="ACTION"
    )
    export = audit.add_parser("export", help="write a pool's audit log to stdout as CSV")
    export.add_argument("--pool", type=uuid.UUID, required=True, help="the key pool's id")
    export.add_argument(
        "--since",
        type=_instant,
        help="only events at or after this ISO 8601 time, e.g. 2026-11-01T00:00:00Z (default: all)",
    )
    smoke = sub.add_parser("smoke", help="run the G2A sandbox journey end to end and print a table")
    smoke.add_argument(
        "--live", action="store_true", help="allow G2A_ENV=live, which moves real money"
    )
    smoke.add_argument(
        "-v", "--verbose", action="store_true", help="also print the service's log lines"
    )
    sandbox = sub.add_parser("g2a-sandbox", help="run the local G2A simulator")
    sandbox.add_argument(
        "--host", default="127.0.0.1", help="loopback address to listen on (default: %(default)s)"
    )
    sandbox.add_argument(
        "--port", type=int, default=8099, help="port to listen on (default: %(default)s)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(os.environ)
    except SettingsError as exc:
        print(f"autokey: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    quiet = args.command == "smoke" and not args.verbose
    configure_logging("error" if quiet else settings.log_level, settings.log_format.value)
    try:
        return _run(args, settings)
    except StartupRefused as refused:
        print(f"autokey: {refused.message}", file=sys.stderr)
        return refused.exit_code
    except NotFound as missing:
        print(f"autokey: no {missing.resource.replace('_', ' ')} {missing.id}", file=sys.stderr)
        return 1
    except StoreUnavailable:
        print(
            f"autokey: cannot reach the database ({settings.database.describe()})",
            file=sys.stderr,
        )
        return bootstrap.EXIT_DATABASE


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "smoke":
        from autokey.entrypoints.smoke import smoke_main

        return smoke_main(live=args.live)
    if args.command == "g2a-sandbox":
        from autokey.entrypoints.g2a_cli import sandbox_main

        return sandbox_main(args.host, args.port)
    log.info("cli.database", command=args.command, database=settings.database.describe())
    if args.command == "serve":
        return _serve(settings, args.host, args.port)
    if args.command == "migrate":
        return asyncio.run(_migrate(settings))
    if settings.database.kind is StoreKind.MEMORY:
        raise StartupRefused(
            "memory:// keeps nothing between processes: `autokey serve` prints demo tokens",
            EXIT_CONFIG,
        )
    if args.command == "sweep":
        return asyncio.run(_sweep(settings))
    if args.command == "audit":
        return asyncio.run(_export_audit(settings, PoolId(args.pool), args.since))
    action = args.token_command
    if action == "create":
        return asyncio.run(_create_token(settings, Role(args.role), args.subject, args.name))
    if action == "list":
        return asyncio.run(_list_tokens(settings))
    return asyncio.run(_revoke_token(settings, TokenId(args.token_id)))


def _serve(settings: Settings, host: str | None, port: int | None) -> int:
    from autokey.entrypoints.web.app import serve_app

    if settings.database.kind is not StoreKind.MEMORY:
        asyncio.run(_preflight(settings))
    host, port = host or settings.host, settings.port if port is None else port
    log.info(
        "http.starting",
        host=host,
        port=port,
        store=settings.database.kind.value,
        env=settings.env.value,
    )
    try:
        web.run_app(serve_app(settings), host=host, port=port, print=None, access_log=None)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise StartupRefused(
            f"{host}:{port} is already in use (another autokey serve?); choose --port",
            EXIT_ADDRESS_IN_USE,
        ) from None
    return 0


async def _preflight(settings: Settings) -> None:
    """Everything that would stop `serve`, checked before it listens."""
    store = await bootstrap.open_ready_store(settings, create=True)
    await store.close()


async def _migrate(settings: Settings) -> int:
    if not settings.production:
        await bootstrap.provision(settings)
    store = await bootstrap.open_store(settings)
    try:
        applied = await store.migrate()
        log.info("db.migrated", applied=list(applied), version=await store.schema_version())
    finally:
        await store.close()
    return 0


async def _sweep(settings: Settings) -> int:
    from autokey.entrypoints.web.app import build_container

    store = await bootstrap.open_ready_store(settings, create=False)
    try:
        container = build_container(settings, store)
        swept = await container.orders().sweep_expired()
        purged = await container.idempotency().purge()
        crossed = await container.offers().sweep_stock_levels()
    finally:
        await store.close()
    log.info("orders.expired_swept", count=swept, idempotency_purged=purged)
    print(json.dumps({"expired": swept, "idempotencyPurged": purged, "stockCrossings": crossed}))
    return 0


def _instant(raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {raw!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def _export_audit(settings: Settings, pool_id: PoolId, since: datetime | None) -> int:
    from autokey.entrypoints.audit_csv import csv_lines
    from autokey.entrypoints.web.app import build_container

    operator = Principal(subject=SubjectId(uuid.UUID(int=0)), role=Role.ADMIN)
    store = await bootstrap.open_ready_store(settings, create=False)
    try:
        inventory = build_container(settings, store).inventory()
        events = await inventory.export_pool_events(operator, pool_id, since)
        async for line in csv_lines(events):
            sys.stdout.write(line)
    finally:
        await store.close()
    return 0


async def _create_token(
    settings: Settings, role: Role, subject: uuid.UUID | None, name: str
) -> int:
    from autokey.entrypoints.web.app import build_container

    store = await bootstrap.open_ready_store(settings, create=False)
    try:
        container = build_container(settings, store)
        secret, token = await container.auth().issue_token(
            role, SubjectId(subject) if subject else None, name
        )
    finally:
        await store.close()
    print(
        json.dumps(
            {
                "token": secret,
                "subject": str(token.subject),
                "role": token.role.value,
                "id": str(token.id),
            }
        )
    )
    return 0


async def _list_tokens(settings: Settings) -> int:
    from autokey.entrypoints.web.app import build_container

    store = await bootstrap.open_ready_store(settings, create=False)
    try:
        tokens = await build_container(settings, store).auth().list_tokens()
    finally:
        await store.close()
    for token in tokens:
        print(
            json.dumps(
                {
                    "id": str(token.id),
                    "role": token.role.value,
                    "subject": str(token.subject),
                    "name": token.name,
                    "createdAt": token.created_at.isoformat(),
                    "lastUsedAt": token.last_used_at and token.last_used_at.isoformat(),
                    "revokedAt": token.revoked_at and token.revoked_at.isoformat(),
                }
            )
        )
    return 0


async def _revoke_token(settings: Settings, token_id: TokenId) -> int:
    from autokey.entrypoints.web.app import build_container

    store = await bootstrap.open_ready_store(settings, create=False)
    try:
        revoked = await build_container(settings, store).auth().revoke(token_id)
    finally:
        await store.close()
    print(json.dumps({"id": str(token_id), "revoked": revoked}))
    return 0 if revoked else 1
