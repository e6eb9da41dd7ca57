"""A call step under a policy that lets no call ring: business hours only, every shift in the
quiet hours (22:00-06:00 under 21:00-08:00). Such a policy is refused on save now; one saved
before (or written to the database) still runs. Its call is recorded as never placed when it
comes due, and every page says 不会拨打 and why; it was put off to the next shift, which the
quiet hours held again, for ever, while the chat said every reminder had gone out."""

from __future__ import annotations

import re
from datetime import UTC

from sqlalchemy import select

from siyu.customers.models import Customer
from siyu.notify.models import OutboxMessage
from siyu.sla import queries, service
from siyu.sla.models import SlaCall, SlaEscalation, SlaPolicy
from tests.notify.test_recording import claimed, run_as_worker
from tests.sla.test_calendar import bj
from tests.tenancy.test_timezone import _call

STEPS = [
    {"delay_s": 60, "action": "app_message", "target": "agent"},
    {"delay_s": 120, "action": "voice_call", "target": "agent"},
]

PENDING_CALLS = (OutboxMessage.kind == "sla_call", OutboxMessage.status == "pending")


def _never_ring_policy(w) -> None:
    """The tenant's policy as one saved before it would be refused: its one shift, the night,
    lies in its quiet hours."""
    with w.session() as s:
        night = [["22:00", "06:00"]]
        service.save_policy(
            s, now=w.rt.now(), steps=STEPS, business_hours_only=True, shifts=night, quiet_hours=[]
        )
    with w.session() as s:
        s.scalar(select(SlaPolicy).where(SlaPolicy.department_wecom_id == 0)).quiet_hours = ["21:00", "08:00"]


def _ask(w, ext: str, at: float) -> None:
    """`ext` asks 张三 at t0 + at; both steps fire (the card, then the call)."""
    w.say("晚上还能下单吗？", at=at, ext=ext)
    w.pulled(at + 3600)
    w.clock(at + 60)
    assert w.fire() == 1
    w.clock(at + 120)
    assert w.fire() == 1


def _send_calls(w, db, settings) -> list[SlaCall]:
    """Run the call sender on every call due now, as the worker would; this tenant's calls."""
    with w.session() as s:
        ids = list(s.scalars(select(OutboxMessage.id).where(*PENDING_CALLS)))
    rows = claimed(db, ids, settings.work_lease)
    if rows:
        run_as_worker(w.rt, rows)
    with w.session() as s:
        return list(s.scalars(select(SlaCall).order_by(SlaCall.id)))


def _pending_calls(w) -> list[OutboxMessage]:
    with w.session() as s:
        return list(s.scalars(select(OutboxMessage).where(*PENDING_CALLS)))


def _row(page: str, conversation_id: int) -> str:
    row = re.search(rf'<li class="cust conv" data-conversation="{conversation_id}"[^>]*>.*?</li>', page, re.S)
    assert row, page
    return row[0]


def test_a_call_its_policy_never_lets_ring_is_recorded_so_and_said_so_everywhere(local, db, settings):
    w = local
    w.t0 = bj(2025, 9, 16, 22, 30).astimezone(UTC)  # a Tuesday night, in the shift
    w.clock(0)
    w.customer("wmcustomer1", "王女士")
    _never_ring_policy(w)
    _ask(w, "wmcustomer1", 0)  # 22:32 the call step fires, in the quiet hours

    [call] = _send_calls(w, db, settings)
    # settled: not put off to 22:00 tomorrow (held again then, for ever), nor left to ring
    assert (call.status, call.error) == ("never", queries.CALL_NEVER)
    assert _pending_calls(w) == []
    conversation = w.conversation()

    board = _call(w, "GET", "/api/v1/sla/board").json()
    [waiting] = [r for r in board["waiting"] if r["conversation_id"] == conversation.id]
    [fired] = [f for f in waiting["fired"] if f["action"] == "voice_call"]
    assert (fired["delivery"], fired["delivery_error"]) == ("never", queries.CALL_NEVER)
    assert fired["held_until"] is None
    assert board["calls_held"] == []
    # among the day's escalations that reached nobody: only the admin can make it ring
    [problem] = [p for p in board["delivery_problems"] if p["kind"] == "call"]
    assert (problem["recipient"], problem["status"]) == ("zhangsan", "never")
    assert problem["error"] == queries.CALL_NEVER
    assert board["delivery_problems_by_status"].get("never") == 1

    row = _row(_call(w, "GET", "/sla").text, conversation.id)
    assert "语音电话→负责成员 · 不会拨打" in row and "提醒已全部发出" not in row, row
    assert "电话没有拨打：到期时策略的班次都在免打扰时段内" in row, row
    assert '<a href="/sla/policy">提醒策略</a>' in row, row  # the admin's way to mend it
    # and the policy's own page says so, not only the board once a call is due
    policy_page = _call(w, "GET", "/sla/policy").text
    assert "这份策略的第 2 步（语音电话打给负责成员）永远不会拨打" in policy_page, policy_page

    chat = _call(w, "GET", f"/conversations/{conversation.id}").text
    assert "提醒已全部发出" not in chat and "提醒步骤都已到期，没有可暂缓的了" in chat
    never = re.search(r'<p class="notice small" role="note" id="call-never">(.*?)</p>', chat, re.S)
    assert never and never[1].startswith("电话不会拨打：这次等待所用提醒策略的班次都在免打扰时段内"), chat
    assert '<a href="/sla/policy">提醒策略</a>' in never[1] and "这一通不会补打" in never[1], never[1]
    agent_chat = _call(w, "GET", f"/conversations/{conversation.id}", "agent", "zhangsan").text
    assert "请管理员在提醒策略里调整班次或免打扰时段" in agent_chat

    with w.session() as s:
        customer_id = s.scalar(select(Customer.id).where(Customer.external_userid == "wmcustomer1"))
    timeline = _call(w, "GET", f"/customers/{customer_id}").text
    assert "语音电话给负责成员 张三（不会拨打：策略的班次都在免打扰时段内" in timeline

    # the next customer's call is a call of its own, not one covered by a call still to ring
    # (which, held for ever, swallowed every later call step to 张三), and is settled alike
    w.customer("wmcustomer2", "赵先生")
    _ask(w, "wmcustomer2", 180)
    with w.session() as s:
        step = s.scalar(
            select(SlaEscalation).where(
                SlaEscalation.conversation_id == w.conversation("wmcustomer2").id, SlaEscalation.step == 1
            )
        )
        assert not step.note.startswith("covered by call"), step.note
    assert [(c.status, c.error) for c in _send_calls(w, db, settings)] == [("never", queries.CALL_NEVER)] * 2
    assert _pending_calls(w) == []


def test_once_the_admin_fixes_the_policy_later_calls_ring_and_the_settled_one_stays_unplaced(
    local, db, settings
):
    """22:32 the call step fires and its call is settled as never placed; at 22:40 the admin
    shortens the quiet hours (from 23:30: the shift rings till then). The settled call does not
    ring after all (the step came due under a policy that let no call ring); the next wait's does."""
    w = local
    w.t0 = bj(2025, 9, 16, 22, 30).astimezone(UTC)
    w.clock(0)
    w.customer("wmcustomer1", "王女士")
    _never_ring_policy(w)
    _ask(w, "wmcustomer1", 0)
    [call] = _send_calls(w, db, settings)
    assert call.status == "never"

    w.clock(600)
    with w.session() as s:
        service.save_policy(s, now=w.rt.now(), quiet_hours=["23:30", "08:00"])
    assert _pending_calls(w) == []  # nothing brought back to ring
    with w.session() as s:
        assert s.get(SlaCall, call.id).status == "never"
    chat = _call(w, "GET", f"/conversations/{w.conversation().id}").text
    # still true of this wait's call, told in the past: the policy lets calls ring now
    never = re.search(r'<p class="notice small" role="note" id="call-never">(.*?)</p>', chat, re.S)
    assert never and never[1].startswith("电话没有拨打：到期时所用"), chat
    assert "策略已调整，之后到期的电话照常拨打" in never[1] and "永远不会拨打" not in chat
    assert "永远不会拨打" not in _call(w, "GET", "/sla/policy").text

    w.customer("wmcustomer2", "赵先生")
    _ask(w, "wmcustomer2", 660)  # 22:43 the call step fires, outside the quiet hours now
    rang = _send_calls(w, db, settings)[-1]
    # handed to the voice provider (off here) rather than held or settled as never
    assert rang.id != call.id and rang.status == "skipped" and "未开通语音电话" in rang.error, rang.error
    chat = _call(w, "GET", f"/conversations/{w.conversation('wmcustomer2').id}").text
    assert 'id="call-never"' not in chat
