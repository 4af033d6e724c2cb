"""Run by the two-process single-flight test: N concurrent token probes in this process.

argv: simulator_url redis_url key_prefix client_id client_secret email callers start_at"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime

import aiohttp
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from autokey.adapters.g2a.client import G2AMarketplaceClient
from autokey.adapters.g2a.config import G2AConfig
from autokey.adapters.g2a.metrics import G2AMetrics
from autokey.adapters.g2a.retry import RetryPolicy
from autokey.adapters.memory.token_cache import MemoryTokenCache
from autokey.adapters.redis.token_cache import RedisTokenCache
from autokey.domain.model.marketplace import MarketplaceEnvironment


async def main(argv: list[str]) -> int:
    url, redis_url, prefix, client_id, secret, email, callers, start_at = argv
    redis = Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)
    cache = RedisTokenCache(redis=redis, fallback=MemoryTokenCache(), key_prefix=prefix)
    config = G2AConfig(
        env=MarketplaceEnvironment.SANDBOX,
        export_base_url=f"{url}/v1",
        import_base_url=url,
        client_id=client_id,
        client_secret=secret,
        email=email,
    )
    async with aiohttp.ClientSession() as session:
        client = G2AMarketplaceClient(
            session=session,
            config=config,
            token_cache=cache,
            retry_policy=RetryPolicy.no_wait(),
            metrics=G2AMetrics(CollectorRegistry()),
            clock=lambda: datetime.now(UTC),
        )
        await redis.ping()  # connect before the start line, so both processes race for real
        await asyncio.sleep(max(0.0, float(start_at) - time.time()))
        probes = await asyncio.gather(*(client.probe_token() for _ in range(int(callers))))
    await redis.aclose()
    print("RESULT " + " ".join(p.source.value for p in probes))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
