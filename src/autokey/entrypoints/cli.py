"""`autokey serve | migrate | sweep | token create|revoke | keys reseal|ids | smoke | g2a-sandbox`.

Exit codes: 0 done, 1 the command could not finish its job, 2 invalid configuration,
3 the configured master keys do not fit the database (docs/runbook.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from collections.abc import Sequence

import structlog
from aiohttp import web

from autokey.adapters.crypto import AesGcmKeyCipher
from autokey.domain.model.auth import Role
from autokey.domain.model.errors import KeyringMismatch, KeyringProblem
from autokey.domain.model.ids import SubjectId, TokenId
from autokey.domain.services.keyring import RESEAL_BATCH, ResealReport
from autokey.entrypoints import bootstrap
from autokey.entrypoints.logging import configure_logging
from autokey.entrypoints.settings import Settings, SettingsError, load_settings

log = structlog.get_logger("autokey.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autokey", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="bind address (default AUTOKEY_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default AUTOKEY_PORT or 8080)")
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
    keys = sub.add_parser("keys", help="manage the encryption of stored keys").add_subparsers(
        dest="keys_command", required=True
    )
    reseal = keys.add_parser(
        "reseal", help="seal every stored key under ENCRYPTION_KEY (resumable, in batches)"
    )
    reseal.add_argument("--batch", type=int, default=RESEAL_BATCH, help="keys per transaction")
    keys.add_parser("ids", help="print the public ids of the configured master keys")
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
    try:
        return _run(args, settings)
    except KeyringMismatch as error:
        print(f"autokey: {describe(error)}", file=sys.stderr)
        return KEYRING_EXIT


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        return _serve(settings, args.host, args.port)
    if args.command == "migrate":
        return asyncio.run(_migrate(settings))
    if args.command == "sweep":
        return asyncio.run(_sweep(settings))
    if args.command == "token" and args.token_command == "revoke":  # noqa: S105 - a subcommand
        return asyncio.run(_revoke_token(settings, TokenId(args.token_id)))
    if args.command == "token":
        return asyncio.run(_create_token(settings, Role(args.role), args.subject, args.name))
    if args.command == "keys" and args.keys_command == "ids":
        ids = AesGcmKeyCipher(bootstrap.master_keys(settings)).key_ids
        print(json.dumps({"current": ids[0], "previous": list(ids[1:])}))
        return 0
    if args.command == "keys":
        return asyncio.run(_reseal(settings, max(1, args.batch)))
    if args.command == "smoke":
        from autokey.entrypoints.smoke import smoke_main

        return smoke_main(live=args.live)
    if args.command == "g2a-sandbox":
        from autokey.entrypoints.g2a_cli import sandbox_main

        return sandbox_main(args.host, args.port)
    return 2


def _serve(settings: Settings, host: str | None, port: int | None) -> int:
    from autokey.entrypoints.web.app import serve_app

    host, port = host or settings.host, settings.port if port is None else port
    log.info(
        "http.starting",
        host=host,
        port=port,
        store=settings.database.kind.value,
        env=settings.env.value,
    )
    web.run_app(serve_app(settings), host=host, port=port, print=None, access_log=None)
    return 0


async def _migrate(settings: Settings) -> int:
    async with bootstrap.opened(settings, migrate=True):
        return 0


async def _sweep(settings: Settings) -> int:
    async with bootstrap.opened(settings) as container:
        swept = await container.orders().sweep_expired()
        purged = await container.idempotency().purge()
    log.info("orders.expired_swept", count=swept, idempotency_purged=purged)
    print(json.dumps({"expired": swept, "idempotencyPurged": purged}))
    return 0


async def _create_token(
    settings: Settings, role: Role, subject: uuid.UUID | None, name: str
) -> int:
    async with bootstrap.opened(settings, migrate=True) as container:
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


async def _revoke_token(settings: Settings, token_id: TokenId) -> int:
    async with bootstrap.opened(settings, migrate=True) as container:
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
KEYRING_EXIT = 3
"""Exit code when the startup check refuses the configured keys (docs/runbook.md)."""


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
