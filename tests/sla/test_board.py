"""The SLA board: who waits now (longest first), today's breaches, first-response times."""

from __future__ import annotations

from datetime import timedelta

from siyu.sla import service


def test_the_board_shows_waits_longest_first_breaches_and_response_times(local):
    w = local
    w.t0 = w.t0.replace(hour=4, minute=0, second=0, microsecond=0) + timedelta(days=1)  # 12:00 Beijing
    w.clock(0)
    with w.session() as s:
        service.save_policy(s, quiet_hours=[])
    w.customer("wmb1", "王女士")
    w.say("第一个问题？", at=0, ext="wmb1")
    w.say("第二个问题？", at=60, ext="wmb2", staff="wangwu")
    w.say("第三个问题？", at=90, ext="wmb3")
    w.reply("好的，马上处理", at=150, ext="wmb3")
    w.pulled(3600)
    w.clock(320)
    w.fire()
    with w.session() as s:
        board = service.board(s, w.rt.now())
    waiting = board["waiting"]
    assert [x["customer"] for x in waiting] == ["王女士", ""]
    assert [x["staff_userid"] for x in waiting] == ["zhangsan", "wangwu"]
    assert abs(waiting[0]["waited_s"] - 320) < 5 and waiting[0]["breached_step"] == 1
    assert waiting[0]["next_step_at"] == w.at(600)
    breaches = board["breaches_today"]
    assert breaches["total"] == 3  # zhangsan's two steps, wangwu's first
    assert breaches["by_step"][0]["count"] == 2 and breaches["by_agent"] == {"zhangsan": 2, "wangwu": 1}
    first = board["first_response_today"]
    assert first["all"]["count"] == 1 and first["all"]["median_s"] == 60
