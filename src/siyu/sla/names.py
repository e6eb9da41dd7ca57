"""What an escalation step's action and target are called wherever Siyu shows them: the policy
form and its summary, the board's badges and delivery problems, a customer's timeline. One
table, so that a supervisor reads the same words for the same step on every page; and a
response time's whole seconds, the same on the board and in the timeline."""

import math

ACTION_NAMES = {"app_message": "提醒卡片", "voice_call": "语音电话"}
TARGET_NAMES = {"agent": "负责成员", "leader": "上级", "contact": "升级联系人"}
# How far a step that fired got (siyu.sla.queries.deliveries), on the board and in the timeline
DELIVERY_NAMES = {
    "queued": "排队中",
    "sent": "已送达",
    "retrying": "重试中",
    "given_up": "未送达",
    "skipped": "未发",
    "placed": "已拨打",
    "covered": "刚打过电话，未再拨打",
    "failed": "拨打失败",
    "never": "不会拨打",
    # a call that did not ring for this customer, by someone's choice or as no longer needed:
    # no trouble, unlike the ones above
    "snoozed": "已暂缓，未打",
    "ended": "等待已结束，未打",
    "nobody": "没有可通知的人",
    "stale": "过期未发",
}
# A card's words where they differ from a call's: one not sent for this customer (the card went
# for others, or found nobody waiting still) is no trouble either
CARD_DELIVERY_NAMES = {**DELIVERY_NAMES, "snoozed": "已暂缓，未发", "ended": "等待已结束，未发"}
_VERBS = {"app_message": "发给", "voice_call": "打给"}


def delivery_name(delivery: str, action: str) -> str:
    """How far a step of `action` got, in the table's words."""
    return (CARD_DELIVERY_NAMES if action == "app_message" else DELIVERY_NAMES).get(delivery, delivery)


def step_phrase(action: str, target: str) -> str:
    """What a step does, in the table's words: 提醒卡片发给上级, 语音电话打给负责成员."""
    return f"{ACTION_NAMES.get(action, action)}{_VERBS.get(action, '给')}{TARGET_NAMES.get(target, target)}"


def whole_seconds(seconds: float) -> int:
    """A response time in the whole seconds the board and the timeline tell it: rounded up, so
    that one counted late for a step (120.4 s, 0.4 s past its 2 minutes: WeCom times messages to
    the millisecond) never reads 2 分 0 秒 beside it, nor one within it more than its limit. To
    the millisecond first: a mean of 119.6 and 120.4 s is 120, not 120.00000000000001."""
    return math.ceil(round(seconds, 3))
