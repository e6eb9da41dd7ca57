"""Group commit for callback intake.

Each callback must be durable before WeCom gets its answer, but a commit per request
caps intake at the disk's fsync rate. Requests hand their decrypted event to one writer
thread that stores everything waiting in one transaction and then releases all of them:
under load many events share a commit, at rest each is stored at once.
"""

from __future__ import annotations

import asyncio
import queue
import threading

_STOP = object()


class EventWriter:
    def __init__(self, store, max_batch: int = 500):
        self._store = store  # CallbackIntake.store: list of rows -> None
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="siyu-intake-writer", daemon=True)
        self._thread.start()

    async def store(self, row) -> None:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((row, loop, future))
        await future

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            batch = [item]
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    self._queue.put(_STOP)
                    break
                batch.append(more)
            error = None
            try:
                self._store([row for row, _, _ in batch])
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the error
                error = exc
            for _, loop, future in batch:
                loop.call_soon_threadsafe(_settle, future, error)


def _settle(future: asyncio.Future, error: Exception | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
