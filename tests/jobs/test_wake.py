"""Worker loops are woken when stored work comes due later (a card's merge window)."""

from __future__ import annotations

import asyncio
import threading

from siyu.runtime import Runtime


def test_wake_after_wakes_the_worker_loops_from_another_thread(settings, db):
    rt = Runtime.create(settings, db)

    async def scenario() -> bool:
        woken = rt.new_wake()
        threading.Thread(target=rt.wake_after, args=(0.05,)).start()  # as firing does, off the loop
        await asyncio.wait_for(woken.wait(), timeout=5)
        return woken.is_set()

    assert asyncio.run(scenario())


def test_wake_after_without_a_worker_loop_does_nothing(settings, db):
    Runtime.create(settings, db).wake_after(0.01)  # no loop in this process: nothing to wake
