"""Redis clients of the long-running processes that ride out a Redis restart.

A Redis stopped or killed and restarted in place (its append-only file on) is gone for a
few seconds, then answers ``LOADING`` while it reads its file back. A client made with
:func:`riding_out` retries every command and every pipeline through that, up to
:data:`RIDE_OUT_S` seconds (one try at least every :data:`MAX_DELAY_S` seconds), and logs
each failed try: what the process is waiting for (an authentication error is raised at
once: credentials do not come back by waiting). Past that the error is raised as before
(the process exits with the service exit code and its supervisor restarts it).

Only for idempotent traffic: a pipeline cut off half-way is sent again whole, which is
right for the forecast worker's reads and its ``HSET``/``HDEL`` writes. The stream worker's
store script has its own retry (:meth:`streams.store.redis_sink.RedisSink._retry`): it is
safe to send again because the script skips the event ids it has already applied.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from redis.backoff import ExponentialBackoff
from redis.exceptions import AuthenticationError
from redis.retry import Retry

log = logging.getLogger(__name__)

RIDE_OUT_S = 60.0
"""How long a command is retried while Redis does not answer before its error is raised."""
MAX_DELAY_S = 1.0
"""The longest wait between two tries (the delay doubles from 0.1 s)."""


class LoggedRetry(Retry):
    """redis-py's :class:`~redis.retry.Retry`, logging each failed try."""

    def call_with_retry(
        self,
        do: Callable[[], Any],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> Any:
        def failed(error: Exception, *count: int) -> Any:
            if isinstance(error, AuthenticationError):  # a wrong password: no outage to wait out
                fail(error, *count)
                raise error
            log.warning("redis unavailable (%s); retrying", error)
            return fail(error, *count)

        return super().call_with_retry(do, failed, is_retryable, with_failure_count)


def riding_out(total_s: float = RIDE_OUT_S) -> dict[str, Any]:
    """Keyword arguments for ``redis.Redis.from_url``: retry through an outage of up to
    ``total_s`` seconds (with the settings' own: ``**settings.redis_kwargs(), **riding_out()``)."""
    retries = 5 + math.ceil(total_s / MAX_DELAY_S)  # 0.1 + 0.2 + 0.4 + 0.8 s, then 1 s each
    return {"retry": LoggedRetry(ExponentialBackoff(cap=MAX_DELAY_S, base=0.05), retries)}


__all__ = ["MAX_DELAY_S", "RIDE_OUT_S", "LoggedRetry", "riding_out"]
