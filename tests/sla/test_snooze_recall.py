"""Per-person snoozes (sla_waits.snoozes) across a recall that moves the wait to the next question."""

from __future__ import annotations

from siyu.sla import service


def test_a_recalled_reply_keeps_every_persons_snooze_not_only_the_one_in_force(local):
    """张三 answers 在吗 with 在; the customer asks 这款有货吗. 张三 (person 1) snoozes it for 30
    minutes, the admin (person 2) for an hour. 张三 recalls 在: the customer waits from 在吗 again
    (the wait on 这款有货吗 merged into it, carrying the snooze). The admin then shortens their
    own hour to 15 minutes: 张三's 30 minutes must still stand, as they do without the recall."""
    w = local
    w.policy()
    w.say("在吗", at=0)
    answer = w.reply("在", at=5)
    w.say("这款有货吗", at=10)
    cid = w.conversation().id
    with w.session() as s:
        service.snooze(s, cid, until=w.at(20 + 1800), now=w.at(20), by="张三", by_id=1)
    with w.session() as s:
        service.snooze(s, cid, until=w.at(25 + 3600), now=w.at(25), by="管理员", by_id=2)
    w.recall(answer, at=30, ext="zhangsan", staff="wmcustomer1")
    running = [x for x in w.waits() if x.closed_at is None]
    assert len(running) == 1 and running[0].snoozed_until == w.at(25 + 3600)
    with w.session() as s:
        service.snooze(s, cid, until=w.at(40 + 900), now=w.at(40), by="管理员", by_id=2)
    held = [x for x in w.waits() if x.closed_at is None][0]
    # fails: until is 40 + 900 s, by 管理员; snoozes holds the admin's alone
    assert held.snoozed_until == w.at(20 + 1800), (held.snoozed_until, held.snoozed_by, held.snoozes)


def test_without_a_recall_the_agents_snooze_stands(local):
    """The same without the recall (the commit's fix): passes."""
    w = local
    w.policy()
    w.say("在吗", at=0)
    w.say("这款有货吗", at=5)
    cid = w.conversation().id
    with w.session() as s:
        service.snooze(s, cid, until=w.at(10 + 1800), now=w.at(10), by="张三", by_id=1)
    with w.session() as s:
        service.snooze(s, cid, until=w.at(20 + 3600), now=w.at(20), by="管理员", by_id=2)
    with w.session() as s:
        service.snooze(s, cid, until=w.at(40 + 900), now=w.at(40), by="管理员", by_id=2)
    assert w.waits()[-1].snoozed_until == w.at(10 + 1800)
