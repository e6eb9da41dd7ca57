"""A backlog being pulled (the worker was down, or WeCom became unreachable mid-pull) holds a
message whose sender's clock is a day ahead: it does not move the archive past what has really
been pulled while the rest of the backlog (the reply) is still in WeCom (a step had fired for a
question whose reply was not pulled yet)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from siyu.conversations import tasks as conversation_tasks
from siyu.conversations.models import ArchiveCursor
from siyu.wecom.archive import JsonLinesArchiveSource


class FailsAfter:
    """The archive as the network delivers it: fetches after the first `ok` fail."""

    def __init__(self, source, ok: int):
        self.source, self.ok, self.calls = source, ok, 0

    async def fetch(self, after_seq, limit=1000):
        self.calls += 1
        if self.calls > self.ok:
            raise ConnectionError("WeCom unreachable")
        return await self.source.fetch(after_seq, limit)

    async def aclose(self):
        await self.source.aclose()


def test_a_message_stamped_a_day_ahead_mid_backlog_does_not_fire_a_step_whose_reply_is_not_pulled(
    local, monkeypatch
):
    w = local
    w.policy(merge_window_s=0, steps=[{"delay_s": 60, "action": "app_message", "target": "agent"}])
    monkeypatch.setattr(conversation_tasks, "BATCH", 2)
    monkeypatch.setattr(conversation_tasks, "BATCHES_PER_STORE", 1)
    backlog = [
        w._message("wmcustomer1", "zhangsan", "请问这个什么时候发货？", -3600, None),  # an hour ago
        w._message("wmskewed", "zhangsan", "在吗", 86400, None),  # the sender's phone is a day ahead
        w._message("zhangsan", "wmcustomer1", "明天上午发货", -3590, None),  # answered 10 s later
    ]
    lines = [json.dumps({"seq": i + 1, "message": m}, ensure_ascii=False) for i, m in enumerate(backlog)]
    source = FailsAfter(JsonLinesArchiveSource(lines), ok=1)  # the first batch (2 messages), then down
    with pytest.raises(ConnectionError):
        asyncio.run(conversation_tasks.pull(w.rt, w.tenant_id, source))
    with w.session() as s:
        cursor = s.scalar(select(ArchiveCursor).where(ArchiveCursor.source == "archive"))
    assert cursor.seq == 2  # the reply (seq 3) is still in WeCom
    fired = w.fire()
    assert fired == 0, "a card went out for a question whose reply had not been pulled yet"
    # pulled as far as the real messages go (an hour ago), not to "now" for want of a day-ahead clock
    assert cursor.pulled_until <= w.at(-3600) + timedelta(seconds=1), cursor.pulled_until
