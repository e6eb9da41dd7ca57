"""A scripted world that drives an emulator through its control API only (over HTTP), so it
can drive an emulator in another process: customers with realistic Chinese names scan the
corp's contact ways, some later delete the member, members edit remarks and tags, now and
then a member deletes a customer. With a "chat" weight, customers also talk (conversation
archive): they ask questions (需要报价, 什么时候发货, ...), now and then with a photo or asking,
taking it back and asking again, say thanks or closing remarks (好的谢谢, 收到, 👌, ...), go
quiet, or agree or decline to have the chat archived; the member answers a question fast,
slowly or never: the reply is due some time later and is posted by the first `step()` that
runs past it. With a "group" weight, members gather some of their customers in
customer groups (客户群, named; change_external_chat), where customers ask and the owner
often answers; with a "group_members" weight, customers join a group (invited or by its QR
code), leave it, or are removed by its owner.

Deterministic for a seed: every choice (action, name, gender, external_userid, which way,
which tags, what is said, msgids, reply delays) comes from one `random.Random(seed)`, so the
same seed against the same setup gives the same story. Chat time: with `chat_step_s` set,
the world keeps its own clock (starting at the emulator's) and moves it that many seconds
per step, so which replies are due is deterministic too; without it, the emulator's clock
(GET /_emulator/clock) decides.

    world = World("http://127.0.0.1:8081", corp_id, seed=7)
    await world.run(steps=50, rate=20)      # or duration_s=60
    world.log                               # what happened, step by step

    chat = World(url, corp_id, seed=7, weights={"scan": 0.2, "chat": 0.8}, chat_step_s=30)
"""

from __future__ import annotations

import asyncio
import base64
import random
import string
import time

import httpx

# Common surnames, roughly by frequency, and characters common in given names.
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程"
    "苏魏吕丁沈姚卢姜崔钟谭陆汪范金石廖贾夏韦方白邹孟熊秦邱江尹薛段雷侯龙史陶黎贺顾毛郝龚邵万钱严武戴孔汤"
)
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超霞平刚华建国文辉玉红梅鑫鹏宇晨欣怡涵浩然思雨佳琪雪丹志俊嘉婷颖慧博昊轩"
)
REMARK_SUFFIXES = ["", "-意向强", "-老客户", "-待回访", "-已报价", "-门店", "-转介绍"]
DESCRIPTIONS = ["", "关注价格", "想要样品", "下周再联系", "预算有限", "对比竞品中", "决策人"]

# Customer questions by topic, and what a member answers to each.
QUESTIONS = {
    "price": ("需要报价", "这个多少钱？", "能便宜点吗", "批量买有优惠吗？", "麻烦发个价格表"),
    "delivery": ("什么时候发货", "几天能到？", "可以发顺丰吗", "今天下单今天能发吗"),
    "stock": ("有现货吗", "还有货吗？", "这款有大码吗", "白色的还有吗"),
    "service": ("怎么退换货？", "坏了能保修吗", "发票怎么开", "安装有人上门吗"),
}
REPLIES = {
    "price": ("您好，报价单稍后发您", "已经是最低价了哦", "量大可以再优惠，您大概要多少？"),
    "delivery": ("今天下单明天发货", "一般3天左右到", "可以的，顺丰到付"),
    "stock": ("有现货的", "这款在补货，下周到", "白色还有最后几件"),
    "service": ("7天无理由退换", "一年保修，坏了直接寄回", "下单时填开票信息就行"),
}
CLOSINGS = ("好的谢谢", "收到", "👌", "[微笑]", "谢谢", "好的", "好的，我考虑一下")
# Customer groups (客户群): what a member calls one, what is said in one, the owner's answers.
GROUP_NAMES = ("VIP客户群", "新品体验群", "售后服务群", "老客户福利群", "团购群")
GROUP_QUESTIONS = ("团购价什么时候开始？", "群里有人用过这款吗？", "今天有优惠吗", "这周还有活动吗？")
GROUP_REPLIES = ("周五晚上8点开始，记得来", "有的，群里下单再减20", "活动链接稍后发群里")
# How a member answers a question: (weight, shortest delay s, longest delay s); never: no reply.
REPLY_SPEEDS = {"fast": (0.5, 5, 90), "slow": (0.3, 180, 1200), "never": (0.2, 0, 0)}

DEFAULT_WEIGHTS = {"scan": 0.6, "edit": 0.25, "customer_leaves": 0.1, "staff_deletes": 0.05}


class World:
    def __init__(
        self,
        base_url: str,
        corp_id: str,
        seed: int = 0,
        config_ids: list[str] | None = None,
        weights: dict[str, float] | None = None,
        wait: bool = False,
        client: httpx.AsyncClient | None = None,
        chat_step_s: float | None = None,
    ) -> None:
        self.base = base_url.rstrip("/") + "/_emulator"
        self.corp_id = corp_id
        self.rng = random.Random(seed)
        self.config_ids = list(config_ids) if config_ids else None
        self.weights = weights or dict(DEFAULT_WEIGHTS)
        self.wait = wait  # wait for each callback's first attempt (slower, orderly)
        self._client = client
        self.relations: list[tuple[str, str]] = []  # (userid, external_userid) alive now
        self.names: dict[str, str] = {}
        self.log: list[dict] = []
        self.chat_step_s = chat_step_s
        self._sim_now: float | None = None  # the world's own clock (with chat_step_s)
        self.pending_replies: list[dict] = []  # staff replies not yet due, by due time
        self.groups: list[tuple[str, str, list[str]]] = []  # (chat_id, owner, customers)

    # --- helpers ------------------------------------------------------------------------
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=30)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _post(self, path: str, body: dict) -> dict:
        resp = await self._http().post(f"{self.base}/corps/{self.corp_id}{path}", json=body)
        resp.raise_for_status()
        return resp.json()

    async def _get(self, path: str):
        resp = await self._http().get(f"{self.base}/corps/{self.corp_id}{path}")
        resp.raise_for_status()
        return resp.json()

    def name(self) -> str:
        surname = self.rng.choice(SURNAMES)
        roll = self.rng.random()
        if roll < 0.15:  # how many people appear in a salesperson's list
            return surname + self.rng.choice(["女士", "先生", "总", "姐", "哥"])
        return surname + "".join(self.rng.choice(GIVEN) for _ in range(self.rng.choice([1, 2, 2])))

    def external_userid(self) -> str:
        alphabet = string.ascii_letters + string.digits
        return "wm" + "".join(self.rng.choice(alphabet) for _ in range(30))

    # --- actions ------------------------------------------------------------------------
    async def scan(self) -> dict:
        if self.config_ids is None:
            self.config_ids = [w["config_id"] for w in await self._get("/contact_ways")]
        if not self.config_ids:
            raise RuntimeError("the corp has no contact way for customers to scan")
        config_id = self.rng.choice(self.config_ids)
        name, ext = self.name(), self.external_userid()
        customer = {"name": name, "external_userid": ext, "gender": self.rng.choice([0, 1, 2, 2])}
        result = await self._post("/scan", {"config_id": config_id, "customer": customer, "wait": self.wait})
        self.relations.append((result["userid"], ext))
        self.names[ext] = name
        return {
            "action": "scan",
            "config_index": self.config_ids.index(config_id),
            "name": name,
            "userid": result["userid"],
            "external_userid": ext,
        }

    def _pick_relation(self) -> tuple[str, str]:
        return self.relations[self.rng.randrange(len(self.relations))]

    async def edit(self) -> dict:
        userid, ext = self._pick_relation()
        groups = await self._get("/tags")
        tag_ids = [t["id"] for g in groups for t in g["tag"]]
        add = self.rng.sample(tag_ids, k=min(len(tag_ids), self.rng.choice([0, 1, 2])))
        remark = self.names[ext] + self.rng.choice(REMARK_SUFFIXES)
        body = {
            "userid": userid,
            "external_userid": ext,
            "remark": remark,
            "description": self.rng.choice(DESCRIPTIONS),
            "add_tags": add,
            "wait": self.wait,
        }
        await self._post("/remark", body)
        return {
            "action": "edit",
            "userid": userid,
            "external_userid": ext,
            "remark": remark,
            "tags": [tag_ids.index(t) for t in add],
        }

    async def customer_leaves(self) -> dict:
        userid, ext = self._pick_relation()
        await self._post(f"/customers/{ext}/remove_staff", {"userid": userid, "wait": self.wait})
        self.relations.remove((userid, ext))
        return {"action": "customer_leaves", "userid": userid, "external_userid": ext}

    async def staff_deletes(self) -> dict:
        userid, ext = self._pick_relation()
        await self._post(f"/staff/{userid}/remove_customer", {"external_userid": ext, "wait": self.wait})
        self.relations.remove((userid, ext))
        return {"action": "staff_deletes", "userid": userid, "external_userid": ext}

    # --- chat (conversation archive) ----------------------------------------------------
    async def _now(self) -> float:
        if self.chat_step_s is None:
            resp = await self._http().get(f"{self.base}/clock")
            resp.raise_for_status()
            return float(resp.json()["now"])
        if self._sim_now is None:
            resp = await self._http().get(f"{self.base}/clock")
            resp.raise_for_status()
            self._sim_now = float(resp.json()["now"])
        return self._sim_now

    def msgid(self) -> str:
        return base64.b64encode(bytes(self.rng.getrandbits(8) for _ in range(20))).decode()

    async def _say(self, sender: str, receiver: str, text: str, at: float, **kind) -> dict:
        """Post a message from `sender` to `receiver` at `at` (see `_message`)."""
        (stored,) = (
            await self._post("/archive/messages", self._message(sender, receiver, text, at, **kind))
        )["messages"]
        return stored

    def _later(self, body: dict) -> None:
        """A message dated ahead of now (the question asked again after a recall, a group
        owner's answer): posted when the clock reaches it, as WeCom's archive would only then
        hold it. Posted now, it had reached Siyu before the messages sent in between."""
        self.pending_replies.append({"due": body["msgtime"] / 1000, "body": body})
        self.pending_replies.sort(key=lambda r: r["due"])

    def _message(self, sender: str, receiver: str, text: str, at: float, **kind) -> dict:
        """A message from `sender` to `receiver` at `at`: text, or the type given in `kind`
        (msgtype and its payload, REFERENCE 11.3; action recall with a revoke)."""
        body = {
            "msgid": self.msgid(),
            "from": sender,
            "tolist": [receiver],
            "msgtime": int(at * 1000),
            "msgtype": "text",
            "text": {"content": text},
        }
        if kind:
            body.pop("text")
            body.update(kind)
        return body

    def _plan_reply(self, entry: dict, userid: str, ext: str, topic: str, msgid: str, now: float) -> None:
        """How fast the member answers this question (fast, slowly, never), and when."""
        speeds = list(REPLY_SPEEDS)
        speed = self.rng.choices(speeds, weights=[REPLY_SPEEDS[s][0] for s in speeds])[0]
        entry["reply"] = speed
        if speed == "never":
            return
        _, low, high = REPLY_SPEEDS[speed]
        delay = round(self.rng.uniform(low, high), 1)
        entry["reply_delay_s"] = delay
        self.pending_replies.append(
            {
                "due": now + delay,
                "userid": userid,
                "external_userid": ext,
                "text": self.rng.choice(REPLIES[topic]),
                "delay_s": delay,
                "to_msgid": msgid,
            }
        )
        self.pending_replies.sort(key=lambda r: r["due"])

    async def chat(self) -> dict:
        """A customer asks something (in words, with a photo, or asks, takes it back and asks
        again), says thanks, goes quiet, or agrees or declines to have the chat archived."""
        userid, ext = self._pick_relation()
        now = await self._now()
        roll = self.rng.random()
        entry: dict = {"action": "chat", "userid": userid, "external_userid": ext}
        if roll < 0.5:
            topic = self.rng.choice(sorted(QUESTIONS))
            text = self.rng.choice(QUESTIONS[topic])
            stored = await self._say(ext, userid, text, now)
            entry.update(kind="question", topic=topic, text=text, msgid=stored["msgid"])
            self._plan_reply(entry, userid, ext, topic, stored["msgid"], now)
        elif roll < 0.56:  # a photo of the goods or the fault: it needs an answer too
            photo = {"md5sum": self.msgid()[:32], "filesize": 20_000 + self.rng.randrange(200_000)}
            stored = await self._say(
                ext, userid, "", now, msgtype="image", image={**photo, "sdkfileid": self.msgid()}
            )
            entry.update(kind="photo", topic="service", msgid=stored["msgid"])
            self._plan_reply(entry, userid, ext, "service", stored["msgid"], now)
        elif roll < 0.6:  # asked, took it back a few seconds later, asked again
            topic = self.rng.choice(sorted(QUESTIONS))
            first, text = self.rng.sample(QUESTIONS[topic], 2)
            asked = await self._say(ext, userid, first, now)
            revoke = {"pre_msgid": asked["msgid"]}
            recall = self._message(ext, userid, "", now + 5, action="recall", msgtype="revoke", revoke=revoke)
            stored = self._message(ext, userid, text, now + 8)
            self._later(recall)
            self._later(stored)
            entry.update(
                kind="recalled",
                topic=topic,
                text=text,
                msgid=stored["msgid"],
                recalled=asked["msgid"],
                recall=recall["msgid"],
            )
            self._plan_reply(entry, userid, ext, topic, stored["msgid"], now + 8)
        elif roll < 0.85:
            text = self.rng.choice(CLOSINGS)
            stored = await self._say(ext, userid, text, now)
            entry.update(kind="thanks", text=text, msgid=stored["msgid"])
        elif roll < 0.97:
            entry["kind"] = "quiet"  # the customer reads and says nothing
        else:  # WeCom asks the customer whether the chat may be archived; they answer
            said = self.rng.choice(("agree", "disagree"))
            # through the consent route: it records the answer (check_single_agree tells it, and
            # Siyu's archive page) and archives the consent message
            stored = await self._post(
                "/archive/agree",
                {
                    "msgid": self.msgid(),
                    "userid": userid,
                    "external_userid": ext,
                    "agree": said == "agree",
                    "at": int(now),
                    "msgtime": int(now * 1000),
                },
            )
            entry.update(kind=said, msgid=stored["msgid"])
        return entry

    async def group(self) -> dict:
        """A member gathers some of their customers in a customer group (客户群), or a
        customer asks something in one and, now and then, the owner answers at once."""
        now = await self._now()
        if not self.groups or self.rng.random() < 0.15:
            owner, _ = self._pick_relation()
            customers = [e for u, e in self.relations if u == owner][:8]
            name = self.rng.choice(GROUP_NAMES)
            made = await self._post(
                "/group_chats", {"owner": owner, "name": name, "members": customers, "wait": self.wait}
            )
            chat_id = made["group_chat"]["chat_id"]
            self.groups.append((chat_id, owner, customers))
            return {
                "action": "group",
                "kind": "created",
                "userid": owner,
                "name": name,
                "members": len(customers),
            }
        chat_id, owner, customers = self.groups[self.rng.randrange(len(self.groups))]
        ext = self.rng.choice(customers)
        text = self.rng.choice(GROUP_QUESTIONS)
        stored = await self._say_in_group(chat_id, ext, [owner, *customers], text, now)
        entry = {"action": "group", "kind": "question", "userid": owner, "external_userid": ext, "text": text}
        entry["msgid"] = stored["msgid"]
        if self.rng.random() < 0.6:
            answer = self.rng.choice(GROUP_REPLIES)
            self._later(self._group_message(chat_id, owner, customers, answer, now + self.rng.uniform(5, 60)))
            entry["answer"] = answer
        return entry

    async def group_members(self) -> dict:
        """Someone joins a customer group (the owner invites them, or they scan its QR code),
        leaves it, or is removed by the owner; with no group yet, a member makes one. A group
        keeps one customer at least (its talk goes on). A weight of its own: worlds without
        it draw exactly what they drew before it was added."""
        if not self.groups:
            return await self.group()
        index = self.rng.randrange(len(self.groups))
        chat_id, owner, customers = self.groups[index]
        outside = list(dict.fromkeys(e for _, e in self.relations if e not in customers))
        joins = self.rng.random() < 0.5
        if (joins and not outside) or (not joins and len(customers) < 2):
            joins = not joins
            if (joins and not outside) or (not joins and len(customers) < 2):
                return await self.group()
        entry = {"action": "group_members", "group": index, "userid": owner}
        if joins:
            ext, scene = self.rng.choice(outside), self.rng.choice([1, 3])
            body = {"members": [ext], "join_scene": scene, "wait": self.wait}
            await self._post(f"/group_chats/{chat_id}/members", body)
            customers.append(ext)
            entry.update(kind="joined", external_userid=ext, join_scene=scene)
        else:
            ext, removed = self.rng.choice(customers), self.rng.random() < 0.4
            body = {"members": [ext], "removed": removed, "wait": self.wait}
            await self._post(f"/group_chats/{chat_id}/leave", body)
            customers.remove(ext)
            entry.update(kind="removed" if removed else "quit", external_userid=ext)
        return entry

    async def _say_in_group(
        self, chat_id: str, sender: str, members: list[str], text: str, at: float
    ) -> dict:
        body = self._group_message(chat_id, sender, members, text, at)
        (stored,) = (await self._post("/archive/messages", body))["messages"]
        return stored

    def _group_message(self, chat_id: str, sender: str, members: list[str], text: str, at: float) -> dict:
        return {
            "msgid": self.msgid(),
            "from": sender,
            "tolist": [m for m in members if m != sender],
            "roomid": chat_id,
            "msgtime": int(at * 1000),
            "msgtype": "text",
            "text": {"content": text},
        }

    async def deliver_due_replies(self) -> list[dict]:
        """Post the staff replies whose time has come (at their due time); log them."""
        if not self.pending_replies:
            return []
        now = await self._now()
        done = []
        while self.pending_replies and self.pending_replies[0]["due"] <= now:
            reply = self.pending_replies.pop(0)
            if "body" in reply:  # a message of the world's own, dated ahead when it was made
                await self._post("/archive/messages", reply["body"])
                continue
            userid, ext = reply["userid"], reply["external_userid"]
            if (userid, ext) not in self.relations:
                continue  # the relation ended before the member got round to it
            stored = await self._say(userid, ext, reply["text"], reply["due"])
            entry = {
                "action": "staff_reply",
                "userid": userid,
                "external_userid": ext,
                "text": reply["text"],
                "delay_s": reply["delay_s"],
                "to_msgid": reply["to_msgid"],
                "msgid": stored["msgid"],
            }
            self.log.append(entry)
            done.append(entry)
        return done

    async def step(self) -> dict:
        """One thing happens in the world; returns (and logs) what. Staff replies that fell
        due since the last step are posted (and logged) first."""
        if self.chat_step_s is not None and self._sim_now is not None:
            self._sim_now += self.chat_step_s
        await self.deliver_due_replies()
        kinds = list(self.weights)
        kind = self.rng.choices(kinds, weights=[self.weights[k] for k in kinds])[0]
        if kind != "scan" and not self.relations:
            kind = "scan"
        entry = await getattr(self, kind)()
        self.log.append(entry)
        return entry

    async def run(
        self, steps: int | None = None, duration_s: float | None = None, rate: float = 5.0
    ) -> list[dict]:
        """Take `steps` steps, or keep going for `duration_s`, at about `rate` steps per second."""
        if steps is None and duration_s is None:
            raise ValueError("give steps or duration_s")
        deadline = time.monotonic() + duration_s if duration_s is not None else None
        done = 0
        while (steps is None or done < steps) and (deadline is None or time.monotonic() < deadline):
            await self.step()
            done += 1
            if rate > 0:
                await asyncio.sleep(1 / rate)
        return self.log[-done:] if done else []
