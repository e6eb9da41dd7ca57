"""The scripted world drives an emulator over HTTP, deterministically for a seed."""

from __future__ import annotations

import asyncio

from siyu.emulator.world import World

from .conftest import call, token


def _setup(http, make_corp) -> dict:
    corp = make_corp()
    tok = token(http, corp)
    for users in (["zhangsan"], ["lisi", "wangwu"]):
        call(
            http,
            "POST",
            "externalcontact/add_contact_way",
            tok,
            {"type": 2, "scene": 2, "user": users, "state": "w"},
        )
    http.post(
        f"/_emulator/corps/{corp['corp_id']}/console/tags",
        json={"action": "create", "group_name": "兴趣", "tag": [{"name": "价格"}, {"name": "售后"}]},
    )
    return corp


async def _story(url: str, corp_id: str, seed: int) -> list[dict]:
    world = World(url, corp_id, seed=seed)
    try:
        await world.run(steps=25, rate=0)
    finally:
        await world.close()
    return [{k: v for k, v in e.items()} for e in world.log]


def test_world_is_deterministic_and_produces_events(emulator_url, http, make_corp, receiver):
    a, b = _setup(http, make_corp), _setup(http, make_corp)
    story_a = asyncio.run(_story(emulator_url, a["corp_id"], 7))
    story_b = asyncio.run(_story(emulator_url, b["corp_id"], 7))
    assert story_a == story_b
    kinds = {e["action"] for e in story_a}
    assert "scan" in kinds and len(kinds) >= 3
    assert all(len(e["name"]) >= 2 for e in story_a if e["action"] == "scan")
    customers = http.get(f"/_emulator/corps/{a['corp_id']}/customers").json()
    scans = sum(e["action"] == "scan" for e in story_a)
    leaves = sum(e["action"] in ("customer_leaves", "staff_deletes") for e in story_a)
    assert len(customers) == scans - leaves
    receiver.wait_for(a["key"], 25 + 1)  # every step (and the tag group) produced a callback


def test_world_gathers_customers_in_groups_that_talk(emulator_url, http, make_corp, receiver):
    corp = _setup(http, make_corp)
    tok = token(http, corp)

    async def story() -> World:
        world = World(
            emulator_url, corp["corp_id"], seed=3, weights={"scan": 0.3, "group": 0.7}, chat_step_s=30
        )
        try:
            await world.run(steps=30, rate=0)
        finally:
            await world.close()
        return world

    world = asyncio.run(story())
    assert world.groups, "no group was created in 30 steps"
    chat_id, owner, customers = world.groups[0]
    chat = call(http, "POST", "externalcontact/groupchat/get", tok, {"chat_id": chat_id})["group_chat"]
    assert chat["owner"] == owner and {m["userid"] for m in chat["member_list"]} == {owner, *customers}
    said = http.get(f"/_emulator/corps/{corp['corp_id']}/archive/messages").json()
    in_groups = [m for m in said if m["message"].get("roomid")]
    questions = [e for e in world.log if e["action"] == "group" and e["kind"] == "question"]
    answers = sum("answer" in e for e in questions)
    # an answer is posted when the clock reaches its time (5-60 s on): the last may still wait
    waiting = [r for r in world.pending_replies if r.get("body", {}).get("roomid")]
    assert questions and answers and len(in_groups) + len(waiting) == len(questions) + answers
    assert len(in_groups) > len(questions)
    times = [m["message"]["msgtime"] for m in said]
    assert times == sorted(times)  # in the archive's order: nothing dated ahead of what follows


def test_with_a_weight_of_their_own_customers_join_and_leave_groups(emulator_url, http, make_corp):
    """The demo's customers join groups (invited by the owner or by the group's QR code),
    leave, or are removed by the owner, as WeCom tells groupchat/get; the same seed tells
    the same story."""

    async def story(corp: dict) -> World:
        weights = {"scan": 0.3, "group": 0.3, "group_members": 0.4}
        world = World(emulator_url, corp["corp_id"], seed=5, weights=weights, chat_step_s=30)
        try:
            await world.run(steps=40, rate=0)
        finally:
            await world.close()
        return world

    a, b = _setup(http, make_corp), _setup(http, make_corp)
    world, again = asyncio.run(story(a)), asyncio.run(story(b))
    assert world.log == again.log
    changes = [e for e in world.log if e["action"] == "group_members"]
    assert {e["kind"] for e in changes} == {"joined", "quit", "removed"}
    assert {e["join_scene"] for e in changes if e["kind"] == "joined"} == {1, 3}
    tok = token(http, a)
    for chat_id, owner, customers in world.groups:
        chat = call(http, "POST", "externalcontact/groupchat/get", tok, {"chat_id": chat_id})["group_chat"]
        assert {m["userid"] for m in chat["member_list"]} == {owner, *customers}
        assert customers  # a group keeps a customer to talk
