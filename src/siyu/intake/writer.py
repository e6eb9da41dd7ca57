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
            for (_, loop, future), error in zip(batch, self._stored(batch), strict=True):
                loop.call_soon_threadsafe(_settle, future, error)

    def _stored(self, batch: list) -> list[Exception | None]:
        """Each request's outcome. When the shared commit fails, every row is stored alone:
        one row the database refuses fails its own request, not every request it was
        batched with (WeCom would have retried them all, and a row that always fails would
        have taken the others down with it each time)."""
        try:
            self._store([row for row, _, _ in batch])
            return [None] * len(batch)
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request
            if len(batch) == 1:
                return [exc]
        errors: list[Exception | None] = []
        for row, _, _ in batch:
            try:
                self._store([row])
                errors.append(None)
            except Exception as exc:  # noqa: BLE001 - handed to the waiting request
                errors.append(exc)
        return errors


def _settle(future: asyncio.Future, error: Exception | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
