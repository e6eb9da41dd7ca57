"""The board's API pages who waits (GET /api/v1/sla/board?limit=&after=&before=): with 7,705
customers waiting it listed every one, with their steps and messages, in an answer of about
2 s. A client walks the pages by cursor and meets every waiting customer once, in the viewer's
scope; the figures (`waiting_total`, breaches, responses, shares, teams) count all who wait."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.support.signed_in import SignedIn

SHANGHAI = ZoneInfo("Asia/Shanghai")
# (customer, agent, seconds after t0 they asked): two ask at the same moment, so that only the
# wait's id orders them
ASKED = [
    ("wmpage1", "zhangsan", 0),
    ("wmpage2", "lisi", 10),
    ("wmpage3", "boss", 20),
    ("wmpage4", "zhangsan", 30),
    ("wmpage5", "wangwu", 30),
    ("wmpage6", "boss", 40),
    ("wmpage7", "zhangsan", 50),
]


class Client:
    """The API as a signed-in person of the tenant sees it, at Siyu's clock."""

    def __init__(self, w, role: str = "admin", staff: str | None = None):
        self.call = SignedIn(w.rt, w.tenant_id, role, staff, "看板")

    def get(self, **params) -> httpx.Response:
        return self.call("GET", "/api/v1/sla/board", params=params)

    def board(self, **params) -> dict:
        r = self.get(**params)
        assert r.status_code == 200, r.text
        return r.json()

    def walk(self, limit: int, between=None) -> tuple[list[dict], list[dict]]:
        """Every page from the first by `next`, calling `between(page number)` after each;
        the pages, and the waiting rows they listed, in order."""
        pages = [self.board(limit=limit)]
        while pages[-1]["next"]:
            assert len(pages[-1]["waiting"]) == limit
            if between:
                between(len(pages))
            pages.append(self.board(limit=limit, after=pages[-1]["next"]))
            assert len(pages) < 20, "the pages never end"
        return pages, [row for page in pages for row in page["waiting"]]


def _seven_waiting(w) -> dict[str, int]:
    """The customers of ASKED wait (10:00 on a Tuesday, Beijing): their conversation ids."""
    w.t0 = datetime(2025, 9, 9, 10, 0, tzinfo=SHANGHAI)
    w.clock(0)
    w.policy()  # 2 min, 5 min, 10 min
    for ext, staff, at in ASKED:
        w.say(f"请问发货了吗 {ext}", at=at, ext=ext, staff=staff)
    return {ext: w.conversation(ext, staff).id for ext, staff, _ in ASKED}


def test_a_client_walks_every_page_and_meets_each_waiting_customer_once_while_waits_close(local):
    w = local
    ids = _seven_waiting(w)
    w.clock(600)
    admin = Client(w)
    whole = admin.board(limit=200)
    assert [row["conversation_id"] for row in whole["waiting"]] == [ids[ext] for ext, _, _ in ASKED]
    assert (whole["waiting_total"], whole["next"], whole["prev"]) == (7, None, None)

    def answer(page: int) -> None:
        # after the first page: one customer it listed, and one on a page not read yet, answered;
        # a new one asks (at the end: the shortest wait)
        if page == 1:
            w.clock(620)
            w.reply("已发货", at=610, ext="wmpage1", staff="zhangsan")
            w.reply("已发货", at=610, ext="wmpage6", staff="boss")
            w.say("在吗", at=615, ext="wmpage8", staff="lisi")

    pages, rows = admin.walk(limit=2, between=answer)
    seen = [row["conversation_id"] for row in rows]
    assert len(seen) == len(set(seen))
    still = [ids[ext] for ext in ("wmpage2", "wmpage3", "wmpage4", "wmpage5", "wmpage7")]
    assert seen == [ids["wmpage1"]] + still + [w.conversation("wmpage8", "lisi").id]
    assert pages[0]["waiting_total"] == 7 and pages[-1]["waiting_total"] == 6
    assert pages[0]["prev"] is None and all(page["prev"] for page in pages[1:])
    # each listed one as whole as before: its message, its steps
    assert rows[1]["message"] == "请问发货了吗 wmpage2" and rows[1]["staff_name"] == "李四"
    # and back: `prev` of the last page is the page before it
    back = admin.board(limit=2, before=pages[-1]["prev"])
    assert [row["conversation_id"] for row in back["waiting"]] == [
        row["conversation_id"] for row in pages[-2]["waiting"]
    ]


def test_the_api_lists_fifty_by_default_and_refuses_a_limit_or_cursor_it_cannot_serve(local):
    w = local
    _seven_waiting(w)
    admin = Client(w)
    assert len(admin.board()["waiting"]) == 7
    assert len(admin.board(limit=200)["waiting"]) == 7
    for limit in ("0", "-1", "201", "10000", "fifty", ""):
        r = admin.get(limit=limit)
        assert r.status_code == 422, (limit, r.text)
        [problem] = r.json()["detail"]
        assert problem["loc"] == ["query", "limit"], problem
    for after in ("nonsense", "eyJ0IjoxfQ", "W10", "x" * 201):
        r = admin.get(after=after)
        assert r.status_code == 422, (after, r.text)
        assert r.json()["detail"], r.text
    r = admin.get(after=admin.board(limit=1)["next"], before=admin.board(limit=1)["next"])
    assert r.status_code == 422 and "not both" in r.json()["detail"], r.text


@pytest.mark.parametrize(
    ("role", "staff", "sees"),
    [
        ("agent", "zhangsan", {"zhangsan"}),
        ("supervisor", "lisi", {"zhangsan", "lisi", "wangwu"}),  # 李四 leads 销售一部; 王总 is above
    ],
)
def test_an_agent_or_supervisor_sees_only_their_scope_on_every_page(local, role, staff, sees):
    w = local
    ids = _seven_waiting(w)
    w.clock(600)
    theirs = [ids[ext] for ext, agent, _ in ASKED if agent in sees]
    viewer = Client(w, role, staff)
    pages, rows = viewer.walk(limit=1)
    assert [row["conversation_id"] for row in rows] == theirs
    assert {row["staff_userid"] for row in rows} == sees
    assert all(page["waiting_total"] == len(theirs) for page in pages)
    # another viewer's cursor moves the page, never the scope
    admins = Client(w).board(limit=1)
    page = viewer.board(limit=7, after=admins["next"])
    assert {row["staff_userid"] for row in page["waiting"]} <= sees


def test_the_figures_count_every_wait_not_the_page(local):
    """Seven wait; the first steps of all fired. On a page of one, the teams' waiting, the
    breaches, the shares and the first responses are those of all seven, as on a page of all."""
    w = local
    _seven_waiting(w)
    w.reply("好的", at=100, ext="wmpage3", staff="boss")  # 王总 answered in 80 s
    w.pulled(3600)
    w.clock(400)
    assert w.fire() > 0
    admin = Client(w)
    one, every = admin.board(limit=1), admin.board(limit=200)
    assert len(one["waiting"]) == 1 and len(every["waiting"]) == 6
    teams = {t["department_name"]: t["waiting"] for t in one["by_team"]}
    assert teams == {"销售一部": 5, "总部": 1}
    assert one["waiting_total"] == 6
    assert one["breaches_total"] == every["breaches_total"] >= 6
    for key in set(every) - {"now", "waiting", "next"}:
        assert one[key] == every[key], key


# ---- what a partner reading the API met


def _tuesday(w):
    w.t0 = datetime(2025, 9, 9, 10, 0, tzinfo=SHANGHAI)
    w.clock(0)
    w.policy()


def test_an_expired_snooze_reads_the_same_on_the_board_row_as_on_the_conversation(local):
    """GET /conversations/{id} says `snooze: null` once the snooze ran out ("null: not, or no
    longer"); the SLA board's row for the same open wait still carries snoozed_until (in the
    past), snoozed_by and snoozed_at, as if its reminders were held back."""
    w = local
    _tuesday(w)
    w.say("在吗 报价", at=0, ext="wmsnz")
    w.pulled(60)
    w.clock(60)
    admin = SignedIn(w.rt, w.tenant_id, "admin", name="管理员")
    cid = w.conversation("wmsnz").id
    r = admin("POST", f"/api/v1/conversations/{cid}/snooze", json={"minutes": 5})
    assert r.status_code == 200 and r.json()["snoozed"], r.text
    w.clock(60 + 30 * 60)  # half an hour later: the 5 minutes are long over, the wait still open
    detail = admin("GET", f"/api/v1/conversations/{cid}").json()
    assert detail["waiting"] and detail["snooze"] is None
    listed = admin("GET", "/api/v1/conversations").json()["items"]
    assert [c["snooze"] for c in listed if c["id"] == cid] == [None]
    board = admin("GET", "/api/v1/sla/board").json()
    row = next(r for r in board["waiting"] if r["conversation_id"] == cid)
    assert (row["snoozed_until"], row["snoozed_by"], row["snoozed_at"]) == (None, "", None), (
        f"board row says snoozed until {row['snoozed_until']} by {row['snoozed_by']!r} at {board['now']};"
        " the conversation says snooze null"
    )


def test_board_page_after_the_last_rows_closed_still_leads_back(local):
    """The board's `next` names a page; when every wait on it closed before the client asked,
    the page comes back empty with `prev` null ("null on the first") though the waits before
    it still wait: the client cannot page back."""
    w = local
    _tuesday(w)
    for i, ext in enumerate(["wmpg1", "wmpg2", "wmpg3"]):
        w.say(f"请问 {ext}", at=i * 10, ext=ext)
    w.pulled(60)
    w.clock(60)
    admin = SignedIn(w.rt, w.tenant_id, "admin")
    first = admin("GET", "/api/v1/sla/board", params={"limit": 2}).json()
    assert len(first["waiting"]) == 2 and first["next"]
    w.reply("好的，马上", at=70, ext="wmpg3")  # the one on the next page is answered meanwhile
    w.clock(80)
    second = admin("GET", "/api/v1/sla/board", params={"limit": 2, "after": first["next"]}).json()
    assert second["waiting"] == [] and second["waiting_total"] == 2
    assert second["prev"] is not None, "an empty page after page 1 says it is the first (prev null)"
    back = admin("GET", "/api/v1/sla/board", params={"limit": 2, "before": second["prev"]}).json()
    assert [r["conversation_id"] for r in back["waiting"]] == [r["conversation_id"] for r in first["waiting"]]


def test_conversation_page_after_the_last_rows_moved_still_leads_back(local):
    """The same on GET /api/v1/conversations: the rows of the page `next` named moved up (a
    customer wrote again) before the client asked; the page is empty and says `prev` null."""
    w = local
    _tuesday(w)
    for i, ext in enumerate(["wmcv1", "wmcv2", "wmcv3"]):
        w.say(f"请问 {ext}", at=i * 10, ext=ext)
        w.reply("好的", at=i * 10 + 1, ext=ext)
    w.pulled(60)
    w.clock(60)
    admin = SignedIn(w.rt, w.tenant_id, "admin")
    first = admin("GET", "/api/v1/conversations", params={"per_page": 2}).json()
    assert first["total"] == 3 and len(first["items"]) == 2 and first["next"]
    last = w.conversation("wmcv1").id
    assert [c["id"] for c in first["items"]] != [last] and last not in [c["id"] for c in first["items"]]
    w.reply("还在吗", at=70, ext="wmcv1")  # the chat on page 2 is now the newest: at the top
    second = admin("GET", "/api/v1/conversations", params={"per_page": 2, "after": first["next"]}).json()
    assert second["items"] == [] and second["total"] == 3
    assert second["prev"] is not None, "an empty page after page 1 says it is the first (prev null)"


def test_a_delete_refused_for_a_policy_already_removed_does_not_tell_how_to_create_one(local):
    """DELETE /sla/policies/{department} with If-Match, after another admin removed the policy:
    the 412 is right, but its detail is the PUT's, telling the client to "send no If-Match to
    create one" (要新建请不带 If-Match) when it asked to delete."""
    w = local
    _tuesday(w)
    admin = SignedIn(w.rt, w.tenant_id, "admin")
    made = admin("PUT", "/api/v1/sla/policies/2", json={"enabled": True})
    assert made.status_code == 201, made.text
    etag = made.headers["etag"]
    assert admin("DELETE", "/api/v1/sla/policies/2").status_code == 204  # another admin, meanwhile
    r = admin("DELETE", "/api/v1/sla/policies/2", headers={"If-Match": etag})
    assert r.status_code == 412, r.text
    assert "create" not in r.json()["detail"] and "新建" not in r.json()["detail"], r.json()["detail"]
