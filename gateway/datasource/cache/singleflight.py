"""In-process single flight: concurrent calls with one key share one task."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """``run(key, make)`` awaits the task already running for ``key``, or starts ``make()``.

    Waiters await the task through ``asyncio.shield``: one waiter's cancellation (a client that went
    away) never cancels the call the others wait for. A failure reaches every waiter and is not kept:
    the task leaves the table when it ends, so the next call starts afresh.
    """

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[T]] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, key: str, make: Callable[[], Awaitable[T]]) -> tuple[asyncio.Task[T], bool]:
        """The task for ``key`` and whether it was already in flight (this caller joined it)."""
        task = self._tasks.get(key)
        if task is not None:
            return task, True
        task = asyncio.get_running_loop().create_task(make())  # type: ignore[arg-type]
        self._tasks[key] = task
        task.add_done_callback(lambda t: self._done(key, t))
        return task, False

    async def run(self, key: str, make: Callable[[], Awaitable[T]]) -> T:
        task, _ = self.start(key, make)
        return await asyncio.shield(task)

    def _done(self, key: str, task: asyncio.Task[T]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled():
            task.exception()  # retrieved, so a call whose waiters all left is not reported as lost

    def cancel_all(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
