"""`autokey serve | migrate | token create | g2a-sandbox`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import uuid
from collections.abc import Sequence

import structlog
from aiohttp import web

from autokey.domain.model.auth import Role
from autokey.domain.model.ids import SubjectId, TokenId
from autokey.entrypoints import bootstrap
from autokey.entrypoints.logging import configure_logging
from autokey.entrypoints.settings import Settings, SettingsError, StoreKind, load_settings
from autokey.entrypoints.workers import (
    default_workers,
    listening_socket,
    serve_worker,
    supervise,
)

log = structlog.get_logger("autokey.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autokey", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="bind address (default AUTOKEY_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default AUTOKEY_PORT or 8080)")
    serve.add_argument(
        "--workers",
        type=int,
        help="processes sharing the port (default AUTOKEY_WORKERS, else one per CPU on"
        " PostgreSQL and 1 on SQLite)",
    )
    sub.add_parser("migrate", help="apply pending database migrations")
    sub.add_parser("sweep", help="cancel expired reservations once (for cron)")
    token = sub.add_parser("token", help="manage API tokens").add_subparsers(
        dest="token_command", required=True
    )
    create = token.add_parser("create", help="create a token and print it once as JSON")
    create.add_argument("--role", choices=[r.value for r in Role], required=True)
    create.add_argument("--subject", type=uuid.UUID, help="the seller/buyer id (default: new)")
    create.add_argument("--name", default="", help="a label for the token")
    revoke = token.add_parser("revoke", help="revoke a token by its id (answers 401 from now on)")
    revoke.add_argument("token_id", type=uuid.UUID)
    smoke = sub.add_parser("smoke", help="run the G2A sandbox smoke test end to end")
    smoke.add_argument("--live", action="store_true", help="allow G2A_ENV=live (real money)")
    sandbox = sub.add_parser("g2a-sandbox", help="run the local G2A simulator")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8099)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(os.environ)
    except SettingsError as exc:
        print(f"autokey: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format.value)
    if args.command == "serve":
        return _serve(settings, args.host, args.port, args.workers)
    if args.command == "migrate":
        return asyncio.run(_migrate(settings))
    if args.command == "sweep":
        return asyncio.run(_sweep(settings))
    if args.command == "token" and args.token_command == "revoke":  # noqa: S105 - a subcommand
        return asyncio.run(_revoke_token(settings, TokenId(args.token_id)))
    if args.command == "token":
        return asyncio.run(_create_token(settings, Role(args.role), args.subject, args.name))
    if args.command == "smoke":
        from autokey.entrypoints.smoke import smoke_main

        return smoke_main(live=args.live)
    if args.command == "g2a-sandbox":
        from autokey.entrypoints.g2a_cli import sandbox_main

        return sandbox_main(args.host, args.port)
    return 2


def _serve(settings: Settings, host: str | None, port: int | None, workers: int | None) -> int:
    from autokey.entrypoints.web.app import serve_app

    host, port = host or settings.host, settings.port if port is None else port
    store = settings.database.kind
    count = workers or settings.workers or default_workers(store is StoreKind.POSTGRES)
    if count < 1 or (count > 1 and store is StoreKind.MEMORY):
        print("autokey: --workers must be 1 or more, and 1 on memory://", file=sys.stderr)
        return 2
    log.info(
        "http.starting",
        host=host,
        port=port,
        store=store.value,
        env=settings.env.value,
        workers=count,
    )
    if count == 1:
        web.run_app(serve_app(settings), host=host, port=port, print=None, access_log=None)
        return 0

    def worker(sock: socket.socket, index: int) -> None:
        # Only the first worker runs the background jobs: one sweeper and one G2A poller per
        # machine, however many workers (they are safe, just wasteful, in parallel).
        serve_worker(serve_app(settings, background_jobs=index == 0), sock)

    return supervise(listening_socket(host, port), count, worker)


async def _migrate(settings: Settings) -> int:
    store = await bootstrap.open_store(settings)
    try:
        applied = await store.migrate()
        log.info("db.migrated", applied=list(applied), version=await store.schema_version())
    finally:
        await store.close()
    return 0


async def _sweep(settings: Settings) -> int:
    from autokey.entrypoints.web.app import build_container

    store = await bootstrap.open_store(settings)
    try:
        container = build_container(settings, store)
        swept = await container.orders().sweep_expired()
        purged = await container.idempotency().purge()
    finally:
        await store.close()
    log.info("orders.expired_swept", count=swept, idempotency_purged=purged)
    print(json.dumps({"expired": swept, "idempotencyPurged": purged}))
    return 0


async def _create_token(
    settings: Settings, role: Role, subject: uuid.UUID | None, name: str
) -> int:
    from autokey.entrypoints.web.app import build_container

    store = await bootstrap.open_store(settings)
    try:
        await store.migrate()
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


async def _revoke_token(settings: Settings, token_id: TokenId) -> int:
    from autokey.entrypoints.web.app import build_container

    store = await bootstrap.open_store(settings)
    try:
        await store.migrate()
        revoked = await build_container(settings, store).auth().revoke(token_id)
    finally:
        await store.close()
    print(json.dumps({"id": str(token_id), "revoked": revoked}))
    return 0 if revoked else 1
