"""Retries with exponential backoff: the search APIs (429 and 5xx answers, network errors) and
plain page fetches (429 and 5xx answers)."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import anyio
import structlog

from toolkits.browser.backends.base import BackendError

log = structlog.get_logger(__name__)
T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: A server asking us to wait longer than this is answered with an error instead: the model
#: can do something else meanwhile.
MAX_RETRY_AFTER_S = 30.0


class RetryableError(BackendError):
    """An answer worth trying again (rate limit, server error, connection failure).

    ``retry_after`` is how long the server asked us to wait (its ``Retry-After``), if it did.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


async def with_retries(
    attempt: Callable[[], Awaitable[T]], *, retries: int, backoff_s: float, what: str,
    max_wait_s: float = MAX_RETRY_AFTER_S,
) -> T:
    """Run ``attempt``; on RetryableError wait and try again, ``retries`` times.

    The wait is ``backoff_s * 2**n``, or what the server asked for when that is longer; a
    server asking for more than ``max_wait_s`` gets no retry.

    Raises:
        BackendError: the last attempt failed, or the server asked to wait too long.
    """
    for n in range(retries + 1):
        try:
            return await attempt()
        except RetryableError as exc:
            if n == retries or (exc.retry_after or 0) > max_wait_s:
                raise BackendError(exc.message) from exc
            delay = max(backoff_s * (2**n), exc.retry_after or 0)
            log.info("browser.api_retry", api=what, attempt=n + 1, delay_s=delay, error=exc.message)
            await anyio.sleep(delay)
    raise AssertionError("unreachable")
