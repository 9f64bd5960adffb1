"""What the fastsock.aio tests share: a runner of coroutines on a fresh loop
of each kind (asyncio's, uvloop), bounded in time."""

from __future__ import annotations

import asyncio
import gc
from typing import Any, Awaitable, Callable

import pytest

ASYNC_TIMEOUT = 15.0

Runner = Callable[[Callable[[], Awaitable[Any]]], Any]


def loop_runner(kind: str) -> Runner:
    """Run a coroutine function on a fresh loop of ``kind`` ("asyncio" or
    "uvloop"), within ASYNC_TIMEOUT; anything the loop reports (a server
    handler's unseen failure, say) fails the test, unless the test set an
    exception handler of its own."""
    factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    if kind == "uvloop":
        # the test extra installs it; without it only asyncio's loop runs
        factory = pytest.importorskip("uvloop").new_event_loop

    def runner(main: Callable[[], Awaitable[Any]]) -> Any:
        loop = factory()
        reported: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _, context: reported.append(context))
        try:
            result = loop.run_until_complete(asyncio.wait_for(main(), ASYNC_TIMEOUT))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            gc.collect()  # a failed task nobody awaited reports when collected
            loop.close()
        assert not reported, f"the event loop reported: {reported}"
        return result
    return runner
