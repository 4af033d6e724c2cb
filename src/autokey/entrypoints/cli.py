"""The `autokey` command line.

Exit status: 0 success; 1 the command ran but did not succeed (a failed smoke run, an unknown
token to revoke, a reseal that still needs a retired key); 2 invalid configuration or usage;
3 the database is missing, unreachable or not migrated, or the configured master keys do not fit
it (docs/runbook.md); 4 `serve` cannot listen because the address is in use.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import attrs
import structlog
from aiohttp import web

from autokey import __version__
from autokey.adapters.crypto import AesGcmKeyCipher
from autokey.domain.model.auth import Principal, Role
from autokey.domain.model.errors import (
    KeyringMismatch,
    KeyringProblem,
    NotFound,
    StoreUnavailable,
)
from autokey.domain.model.ids import PoolId, SubjectId, TokenId
from autokey.domain.services.keyring import RESEAL_BATCH, ResealReport
from autokey.entrypoints import bootstrap
from autokey.entrypoints.bootstrap import EXIT_ADDRESS_IN_USE, EXIT_CONFIG, StartupRefused
from autokey.entrypoints.logconfig import configure_logging
from autokey.entrypoints.settings import Settings, SettingsError, StoreKind, load_settings
from autokey.entrypoints.workers import default_workers, supervise

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
    serve.add_argument(
        "--workers",
        type=int,
        help="processes sharing the port (default: AUTOKEY_WORKERS, else one per CPU on"
        " PostgreSQL and 1 on SQLite and memory)",
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
    keys = sub.add_parser("keys", help="manage the encryption of stored keys").add_subparsers(
        dest="keys_command", required=True, metavar="ACTION"
    )
    reseal = keys.add_parser(
        "reseal", help="seal every stored key under ENCRYPTION_KEY (resumable, in batches)"
    )
    reseal.add_argument(
        "--batch",
        type=int,
        default=RESEAL_BATCH,
        help="keys re-sealed per transaction (default: %(default)s)",
    )
    keys.add_parser("ids", help="print the public ids of the configured master keys")
    g2a = sub.add_parser("g2a", help="selling on G2A").add_subparsers(
        dest="g2a_command", required=True, metavar="ACTION"
    )
    credentials = g2a.add_parser(
        "merchant-credentials", help="credentials G2A uses to call /g2a/merchant"
    ).add_subparsers(dest="credentials_command", required=True, metavar="ACTION")
    issue = credentials.add_parser("create", help="create credentials and print them once")
    issue.add_argument(
        "--seller", type=uuid.UUID, required=True, help="the seller id the credentials sell for"
    )
    issue.add_argument("--name", default="", help="a label to recognise the credentials by")
    withdraw = credentials.add_parser("revoke", help="revoke credentials and their tokens")
    withdraw.add_argument("client_id", help="the clientId printed by `create`")
    smoke = sub.add_parser("smoke", help="run the G2A sandbox journey end to end and print a table")
    smoke.add_argument(
        "--live", action="store_true", help="allow G2A_ENV=live, which moves real money"
    )
    smoke.add_argument(
        "--merchant",
        action="store_true",
        help="run G2A's merchant stock contract journey against a local autokey instead",
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
    level = "error" if quiet else settings.log_level
    configure_logging(level, settings.log_format.value, final=True)
    try:
        return _run(args, settings)
    except StartupRefused as refused:
        print(f"autokey: {refused.message}", file=sys.stderr)
        return refused.exit_code
    except KeyringMismatch as error:
        print(f"autokey: {describe(error)}", file=sys.stderr)
        return bootstrap.EXIT_DATABASE
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
    if args.command == "smoke" and args.merchant:
        from autokey.entrypoints.merchant_smoke import merchant_smoke_main

        return merchant_smoke_main()
    if args.command == "smoke":
        from autokey.entrypoints.smoke import smoke_main

        return smoke_main(live=args.live)
    if args.command == "g2a-sandbox":
        from autokey.entrypoints.g2a_cli import sandbox_main

        return sandbox_main(args.host, args.port)
    if args.command == "keys" and args.keys_command == "ids":
        ids = AesGcmKeyCipher(bootstrap.master_keys(settings)).key_ids
        print(json.dumps({"current": ids[0], "previous": list(ids[1:])}))
        return 0
    log.info("cli.database", command=args.command, database=settings.database.describe())
    if args.command == "serve":
        return _serve(settings, args.host, args.port, args.workers)
    if args.command == "migrate":
        return asyncio.run(_migrate(settings))
    if settings.database.kind is StoreKind.MEMORY:
        raise StartupRefused(
            "memory:// keeps nothing between processes: `autokey serve` prints demo tokens",
            EXIT_CONFIG,
        )
    if args.command == "sweep":
        return asyncio.run(_sweep(settings))
    if args.command == "keys":
        return asyncio.run(_reseal(settings, max(1, args.batch)))
    if args.command == "g2a" and args.credentials_command == "create":
        return asyncio.run(_create_credentials(settings, SubjectId(args.seller), args.name))
    if args.command == "g2a":
        return asyncio.run(_revoke_credentials(settings, args.client_id))
    if args.command == "audit":
        return asyncio.run(_export_audit(settings, PoolId(args.pool), args.since))
    action = args.token_command
    if action == "create":
        return asyncio.run(_create_token(settings, Role(args.role), args.subject, args.name))
    if action == "list":
        return asyncio.run(_list_tokens(settings))
    return asyncio.run(_revoke_token(settings, TokenId(args.token_id)))


def _serve(settings: Settings, host: str | None, port: int | None, workers: int | None) -> int:
    from autokey.entrypoints.metrics import share_between_workers, shared_directory
    from autokey.entrypoints.web import runner
    from autokey.entrypoints.web.app import make_metrics_app, serve_app
    from autokey.entrypoints.web.context import CONTAINER

    if settings.database.kind is not StoreKind.MEMORY:
        asyncio.run(_preflight(settings))
    host, port = host or settings.host, settings.port if port is None else port
    metrics = settings.metrics_addr
    store = settings.database.kind
    count = workers or settings.workers or default_workers(store is StoreKind.POSTGRES)
    if count < 1 or (count > 1 and store is StoreKind.MEMORY):
        raise StartupRefused("--workers must be 1 or more, and 1 on memory://", EXIT_CONFIG)
    settings = attrs.evolve(settings, workers=count)  # each worker knows how many there are
    log.info(
        "http.starting",
        host=host,
        port=port,
        metrics=None if metrics is None else f"{metrics[0]}:{metrics[1]}",
        store=store.value,
        env=settings.env.value,
        workers=count,
    )
    keepalive_s = settings.http.keepalive_timeout_s

    def metrics_listeners(app: web.Application, first: bool) -> list[runner.Listener]:
        # With several workers the first serves /metrics (the sums over all of them) and runs
        # the background jobs.
        return [(make_metrics_app(app[CONTAINER]), *metrics)] if metrics and first else []

    try:
        if count == 1:
            app = serve_app(settings)
            everything = [(app, host, port), *metrics_listeners(app, True)]
            runner.run(runner.serve(everything, keepalive_timeout=keepalive_s))
            return 0
        sock = runner.listening_socket(host, port)  # bound once, shared by every worker
    except (StartupRefused, KeyringMismatch, StoreUnavailable):
        raise  # one line for a person, from main()
    except runner.AddressInUse as taken:
        raise StartupRefused(
            f"{taken.host}:{taken.port} is already in use (another autokey serve?); "
            "choose another --port or AUTOKEY_METRICS_ADDR",
            EXIT_ADDRESS_IN_USE,
        ) from None
    except Exception:  # any other start-up failure: one JSON line, not a traceback
        log.exception("http.start_failed")
        return 1

    def worker(shared: socket.socket, index: int) -> None:
        app = serve_app(settings, background_jobs=index == 0)
        everything = [(app, shared), *metrics_listeners(app, index == 0)]
        # SIGINT (Ctrl-C) is the supervisor's to answer; SIGTERM stops a worker gracefully.
        runner.run(
            runner.serve(everything, stop_on=(signal.SIGTERM,), keepalive_timeout=keepalive_s)
        )

    with shared_directory() as shared:
        share_between_workers(shared)  # before the forks: /metrics sums every worker
        return supervise(sock, count, worker)


async def _preflight(settings: Settings) -> None:
    """Everything that would stop `serve`, checked before it listens."""
    async with bootstrap.opened(settings, create=True):
        pass


async def _migrate(settings: Settings) -> int:
    async with bootstrap.opened(settings, create=True, migrate=True):
        return 0


async def _sweep(settings: Settings) -> int:
    async with bootstrap.opened(settings) as container:
        swept = await container.orders().sweep_expired()
        purged = await container.idempotency().purge()
        await container.inventory().housekeeping()
        crossed = await container.offers().sweep_stock_levels()
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

    operator = Principal(subject=SubjectId(uuid.UUID(int=0)), role=Role.ADMIN)
    async with bootstrap.opened(settings) as container:
        events = await container.inventory().export_pool_events(operator, pool_id, since)
        async for line in csv_lines(events):
            sys.stdout.write(line)
    return 0


async def _create_token(
    settings: Settings, role: Role, subject: uuid.UUID | None, name: str
) -> int:
    async with bootstrap.opened(settings) as container:
        secret, token = await container.auth().issue_token(
            role, SubjectId(subject) if subject else None, name
        )
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
    async with bootstrap.opened(settings) as container:
        tokens = await container.auth().list_tokens()
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
    async with bootstrap.opened(settings) as container:
        revoked = await container.auth().revoke(token_id)
    print(json.dumps({"id": str(token_id), "revoked": revoked}))
    return 0 if revoked else 1


async def _reseal(settings: Settings, batch: int) -> int:
    def progress(report: ResealReport) -> None:
        print(f"autokey: resealed {report.resealed} keys", file=sys.stderr, flush=True)

    async with bootstrap.opened(settings) as container:
        current = container.cipher().key_ids[0]
        report = await container.keyring().reseal(progress, batch)
    log.info(
        "crypto.resealed",
        keys=report.resealed,
        index_key=report.index_key_resealed,
        unreadable=len(report.unreadable),
        still_needed=list(report.still_needed),
    )
    print(
        json.dumps(
            {
                "currentKeyId": current,
                "resealed": report.resealed,
                "indexKeyResealed": report.index_key_resealed,
                "unreadable": [str(k) for k in report.unreadable],
                "stillNeeded": list(report.still_needed),
            }
        )
    )
    if report.still_needed:
        print(
            f"autokey: master key(s) {', '.join(report.still_needed)} are still needed; "
            f"see {RUNBOOK}#re-sealing-and-retiring-an-old-master-key",
            file=sys.stderr,
        )
        return 1
    return 0


RUNBOOK = "docs/runbook.md"


def describe(error: KeyringMismatch) -> str:
    """The one line an operator sees: the problem, public key ids only, the runbook section."""
    configured = ", ".join(error.configured) or "none"
    if error.problem is KeyringProblem.MASTER_KEYS_MISSING:
        return (
            f"refusing to start: the database holds values sealed under master key id(s) "
            f"{', '.join(error.missing)}, which are not configured (configured: {configured}); "
            "set the key that was in use as ENCRYPTION_KEY or ENCRYPTION_KEY_PREVIOUS; "
            f"see {RUNBOOK}#when-autokey-refuses-to-start"
        )
    if error.problem is KeyringProblem.INDEX_KEY_NOT_REPRODUCIBLE:
        return (
            f"refusing to start: the configured master keys (ids {configured}) cannot recover "
            f"the blind-index key{' ' + error.index_key_id if error.index_key_id else ''} "
            "the stored fingerprints were made with; "
            f"see {RUNBOOK}#when-autokey-refuses-to-start"
        )
    return (
        "refusing to start: the database schema predates migration 0004 (key ids); "
        f"run `autokey migrate` first; see {RUNBOOK}#when-autokey-refuses-to-start"
    )


async def _create_credentials(settings: Settings, seller: SubjectId, name: str) -> int:
    async with bootstrap.opened(settings) as container:
        secret, credential = await container.merchant().create_credentials(seller, name)
    print(
        json.dumps(
            {
                "clientId": credential.client_id,
                "clientSecret": secret,
                "seller": str(credential.seller_id),
            }
        )
    )
    return 0


async def _revoke_credentials(settings: Settings, client_id: str) -> int:
    async with bootstrap.opened(settings) as container:
        revoked = await container.merchant().revoke_credentials(client_id)
    print(json.dumps({"clientId": client_id, "revoked": revoked}))
    return 0 if revoked else 1
