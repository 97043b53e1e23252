"""Retries with exponential backoff for the search APIs (429 and 5xx answers, network errors)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import structlog

from toolkits.browser.backends.base import BackendError

log = structlog.get_logger(__name__)
T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class RetryableError(BackendError):
    """An answer worth trying again (rate limit, server error, connection failure)."""


async def with_retries(
    attempt: Callable[[], Awaitable[T]], *, retries: int, backoff_s: float, what: str
) -> T:
    """Run ``attempt``; on RetryableError wait backoff_s * 2**n and try again, ``retries`` times."""
    for n in range(retries + 1):
        try:
            return await attempt()
        except RetryableError as exc:
            if n == retries:
                raise BackendError(exc.message) from exc
            delay = backoff_s * (2**n)
            log.info("browser.api_retry", api=what, attempt=n + 1, delay_s=delay, error=exc.message)
            await anyio.sleep(delay)
    raise AssertionError("unreachable")
