"""Outbox loops are woken when stored work comes due later (a card's merge window)."""

from __future__ import annotations

import asyncio
import threading

from siyu.runtime import Runtime


def test_wake_after_wakes_the_outbox_loops_from_another_thread(settings, db):
    rt = Runtime.create(settings, db)

    async def scenario() -> tuple[bool, bool]:
        outbox, other = rt.new_wake(outbox=True), rt.new_wake()
        threading.Thread(target=rt.wake_after, args=(0.05,)).start()  # as firing does, off the loop
        await asyncio.wait_for(outbox.wait(), timeout=5)
        return outbox.is_set(), other.is_set()

    assert asyncio.run(scenario()) == (True, False)  # the other loops have nothing new to claim


def test_wake_ups_close_together_share_one(settings, db):
    rt = Runtime.create(settings, db)

    async def scenario() -> int:
        woken = rt.new_wake(outbox=True)
        sets = []
        original = woken.set
        woken.set = lambda: (sets.append(1), original())  # count the wake-ups
        for _ in range(50):
            rt.wake_after(0.05)  # fifty cards due at (almost) the same moment
        await asyncio.sleep(0.3)
        return len(sets)

    assert asyncio.run(scenario()) in (1, 2)  # one grid slot, or two when they straddle a slot edge


def test_steps_fired_wake_the_senders_and_leave_the_other_loops_asleep(settings, db):
    rt = Runtime.create(settings, db)

    async def scenario() -> tuple[bool, bool]:
        outbox, other = rt.new_wake(outbox=True), rt.new_wake()
        rt.wake_senders()  # as the worker does once a batch of steps has queued its cards
        return outbox.is_set(), other.is_set()

    # the urgent and callback loops would only claim nothing: each wake-up costs them a query
    assert asyncio.run(scenario()) == (True, False)
