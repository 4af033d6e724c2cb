"""`autokey g2a-sandbox`: run the local G2A simulator until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import sys

from autokey.adapters.g2a.auth import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_EMAIL
from autokey.adapters.g2a.simulator import FaultConfig, SimulatorConfig, serve_simulator
from autokey.adapters.g2a.urls import is_loopback_host


def sandbox_main(
    host: str,
    port: int,
    *,
    callback_url: str | None = None,
    token_lifetime_s: int = 300,
    faults: FaultConfig | None = None,
) -> int:
    """Serve the simulator on `host:port` (loopback only); returns the exit status."""
    if not is_loopback_host(host):
        print(f"autokey g2a-sandbox: refusing to listen on non-loopback host {host!r}")
        return 2
    config = SimulatorConfig(
        callback_url=callback_url, token_lifetime_s=token_lifetime_s, faults=faults or FaultConfig()
    )
    shown = f"[{host}]" if ":" in host else host
    print(f"G2A simulator on http://{shown}:{port} (Export API at /v1); Ctrl-C stops it")
    print("It accepts G2A's published sandbox credentials; point autokey at it with:")
    for name, value in (
        ("G2A_API_URL", f"http://{shown}:{port}/v1"),
        ("G2A_API_KEY", SANDBOX_CLIENT_ID),
        ("G2A_API_HASH", SANDBOX_CLIENT_SECRET),
        ("G2A_EMAIL", SANDBOX_EMAIL),
    ):
        print(f"  export {name}={value}")
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_simulator(host, port, config))
    return 0
