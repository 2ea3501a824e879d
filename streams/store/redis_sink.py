"""The feature store's write side on Redis: the store script on a thread of its own."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from streams.store.keys import KeyLayout
from streams.store.scripts import APPLY_LUA, DROP_LUA
from streams.store.sink import Applied, DueWindow, parse_due

log = logging.getLogger(__name__)

RETRY_MAX_DELAY_S = 1.0
"""The longest wait between two tries while Redis is unavailable (the delay doubles from
0.1 s): a restarted Redis is written to again within about a second of answering."""


class RedisSink:
    """The feature store's write side (connects on first use).

    The store script runs on a thread of its own, over a synchronous client: the request
    is on its way to Redis as soon as :meth:`apply` is called, and the event loop's thread
    is free to prepare the next batch while Redis applies this one. (Over ``redis.asyncio``
    the request was only written at the caller's next real suspension, which, behind a
    CPU-bound ``prepare``, came after the next batch was prepared: the two never overlapped.)
    The other calls, small ones, use ``redis.asyncio``.
    """

    def __init__(self, redis_url: str, layout: KeyLayout, redis_kwargs: dict[str, Any]) -> None:
        self.redis_url = redis_url
        self.layout = layout
        self.redis_kwargs = redis_kwargs
        self._client: Any = None
        self._sync: Any = None
        self._script: Any = None
        self._drop: Any = None
        self._thread: ThreadPoolExecutor | None = None

    def _connect(self) -> Any:
        if self._client is None:
            import redis
            import redis.asyncio as aredis

            self._client = aredis.Redis.from_url(self.redis_url, **self.redis_kwargs)
            self._sync = redis.Redis.from_url(self.redis_url, **self.redis_kwargs)
            self._script = self._sync.register_script(APPLY_LUA)
            # one thread: scripts reach Redis in the order they are applied
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-script")
        return self._client

    async def _retry(self, make: Any) -> Any:
        import redis

        delay = 0.1
        while True:
            try:
                return await make()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("redis unavailable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_DELAY_S)

    async def apply(self, args: list[str | int | bytes]) -> Applied:
        import orjson

        self._connect()
        loop = asyncio.get_running_loop()
        run = partial(self._script, keys=[], args=args)
        result = await self._retry(lambda: loop.run_in_executor(self._thread, run))
        if isinstance(result, list):
            return Applied([r.decode() if isinstance(r, bytes) else str(r) for r in result], [])
        return Applied([], parse_due(orjson.loads(result)))

    async def watermarks(self) -> dict[str, int]:
        client = self._connect()
        raw = await self._retry(lambda: client.hgetall(self.layout.watermarks))
        return {k.decode(): int(v) for k, v in raw.items()}

    async def offsets(self) -> dict[str, int] | None:
        client = self._connect()

        async def read() -> list[Any]:
            pipe = client.pipeline(transaction=True)
            pipe.hgetall(self.layout.offsets)
            pipe.exists(self.layout.stats)
            return list(await pipe.execute())

        raw, has_stats = await self._retry(read)
        if not raw and has_stats:
            return None
        return {k.decode(): int(v) for k, v in raw.items()}

    async def drop_windows(self, windows: Sequence[DueWindow]) -> None:
        client = self._connect()
        if self._drop is None:
            self._drop = client.register_script(DROP_LUA)
        args: list[str | int] = [len(windows)]
        for topic, partition, start, skus in windows:
            zkey = self.layout.open_windows(topic, partition)
            args += [zkey, self.layout.window_skus(topic, partition, start), start, len(skus)]
            args += skus
        if windows:
            await self._retry(lambda: self._drop(keys=[], args=args))

    async def incr_stat(self, name: str, amount: int) -> None:
        client = self._connect()
        await self._retry(lambda: client.hincrby(self.layout.stats, name, amount))

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._thread is not None:
            self._thread.shutdown()
            self._thread = None
        if self._sync is not None:
            self._sync.close()
            self._sync = None
