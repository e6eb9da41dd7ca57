"""The needs-reply classifier as a user of the inbox sees it, and the `siyu needs-reply` contract."""

from __future__ import annotations

import io
import json

import pytest

from siyu.insights import NeedsReplyClassifier, Verdict, default_classifier
from siyu.insights.needs_reply import run_cli

DONE = "退款已经提交了，1到3个工作日到账。"  # a staff statement that asks nothing


def label(text: str, context: str | None = DONE) -> str:
    return default_classifier().classify([(text, context)])[0].label


@pytest.mark.parametrize(
    "text",
    [
        "好的",
        "谢谢",
        "收到",
        "嗯嗯",
        "拜拜",
        "👌",
        "好的谢谢",
        "没有了谢谢",
        "好滴 谢谢亲",
        "嗯呐",
        "好好好",
        "嗯嗯嗯嗯",
        "ＯＫ",
        "ok了",
        "谢谢谢谢",
        "好的，辛苦了！",
        "知道了",
        "明白了，谢谢你的耐心解答",
        "好哒~",
        "哈哈 好的",
        "感谢感谢 你们服务真好",
        "好的 我再考虑一下",
        "我先问问我老公",
        "那我等你消息",
        "好的 有问题再找你",
        "好吧 那先这样",
        "可以了 谢谢",
        "解决了",
        "好的 晚安",
        "收到啦",
        "木有了 谢谢",
    ],
)
def test_closing_remarks_need_no_reply(text):
    assert label(text) == "closing"


@pytest.mark.parametrize(
    "text", ["[微笑]", "[OK]", "[抱拳]", "[强]", "好的[玫瑰]", "谢谢[愉快]", "收到[握手]"]
)
def test_wechat_emoji_codes_are_acknowledgements(text):
    assert label(text) == "closing"


@pytest.mark.parametrize("text", ["[表情]", "[emotion]", "[动画表情]", "👍", "👍👍👍", "🙏", "😊"])
def test_stickers_and_thumbs_up_alone_after_a_statement_are_closing(text):
    assert label(text) == "closing"


@pytest.mark.parametrize("text", ["。", "。。。", "…", "!!", "~"])
def test_punctuation_only_is_closing_but_question_marks_are_not(text):
    assert label(text) == "closing"
    assert label("？") == label("???") == label("?") == "needs_reply"


@pytest.mark.parametrize("text", ["[疑问]", "❓", "😡", "[发怒]", "好的[疑问]"])
def test_question_and_displeasure_emoji_need_a_reply(text):
    assert label(text) == "needs_reply"


@pytest.mark.parametrize(
    "text",
    ["[图片]", "[语音]", "[视频]", "[文件] 合同.pdf", "[链接] 夏季新款连衣裙", "[位置]", "好的 [图片]"],
)
def test_media_from_a_customer_needs_a_reply(text):
    assert label(text) == "needs_reply"


def test_placeholders_are_content_not_emoji():
    assert label("[订单号]") == "needs_reply"
    assert label("好的[数字x]") == "needs_reply"


@pytest.mark.parametrize(
    "text",
    [
        "好的谢谢，另外发票怎么开？",
        "好的，那报价发我一下",
        "谢谢 那什么时候到",
        "收到，合同也发我一份吧",
        "好的 不过能再便宜点吗",
        "嗯嗯 那你帮我改一下吧",
        "好的 麻烦帮忙看下",
        "知道了 但是我明天不在家",
        "收到 有点贵啊",
        "好的吗",
        "收到了吗",
    ],
)
def test_acknowledgements_that_sneak_in_a_request_or_question_need_a_reply(text):
    assert label(text) == "needs_reply"


@pytest.mark.parametrize(
    "text",
    [
        "这件有L码吗",
        "什么时候发货？",
        "快递到哪了",
        "能便宜点不",
        "价格呢",
        "有没有优惠券",
        "多久能到账",
        "为啥还没发货",
        "怎么开发票",
        "这个和图片颜色一样吗",
    ],
)
def test_questions_with_or_without_question_marks_need_a_reply(text):
    assert label(text) == "needs_reply"


@pytest.mark.parametrize(
    "text", ["发我一下报价", "麻烦尽快发货", "帮我改下地址", "请帮我开一张发票", "我要退款"]
)
def test_requests_need_a_reply(text):
    assert label(text) == "needs_reply"


@pytest.mark.parametrize(
    "text", ["没有收到", "收不到啊", "领不了", "还是不行", "我去看了 没有啊", "好麻烦", "好了没有", "不好"]
)
def test_complaints_made_of_closing_words_need_a_reply(text):
    assert label(text) == "needs_reply"


@pytest.mark.parametrize("text", ["你好", "在吗", "亲", "客服", "王老师", "您好，咨询一下"])
def test_greetings_and_calls_for_attention_need_a_reply(text):
    assert label(text, None) == "needs_reply"


@pytest.mark.parametrize(
    "staff",
    [
        "确定要取消吗？",
        "需要帮您申请退款吗？",
        "要不要帮您预约周六？",
        "黑色和白色您要哪个？",
        "您看周六可以吗？",
        "是否同意按这个方案处理？",
        "请问是这个订单吗？",
        "帮您换成M码可以吗？",
    ],
)
@pytest.mark.parametrize("text", ["嗯", "好的", "可以", "是的", "好的谢谢", "行", "👍", "[OK]"])
def test_a_bare_acknowledgement_answering_a_decision_question_needs_a_reply(staff, text):
    assert label(text, staff) == "needs_reply"
    assert label(text, DONE) == "closing"


@pytest.mark.parametrize("text", ["不用了谢谢", "暂时不需要", "算了", "我再考虑一下", "先不用了"])
def test_declining_an_offer_is_closing(text):
    assert label(text, "需要帮您申请退款吗？") == "closing"


def test_closing_checks_comprehension_checks_waits_and_requests_to_act():
    assert label("没有了", "请问还有什么可以帮您？") == "closing"
    assert label("没有", "还有其他问题吗？") == "closing"
    assert label("是的", "还有其他问题吗？") == "needs_reply"
    assert label("有", "还有其他问题吗？") == "needs_reply"
    assert label("没有", "您有会员卡吗？") == "needs_reply"
    assert label("明白了", "您看明白了吗？") == "closing"
    assert label("好的", "您稍等，我帮您查一下。") == "closing"
    assert label("好的", "麻烦您发一下订单号。") == "closing"
    assert label("好的", "您先重启一下试试好吗？") == "closing"
    assert label("找不到订单号", "麻烦您发一下订单号。") == "needs_reply"


def test_context_is_optional_and_the_last_question_counts():
    assert label("好的", None) == "closing"
    assert label("好的", "") == "closing"
    assert label("好的", "已经帮您退款了。还有其他问题吗？") == "closing"
    assert label("好的", "宝宝现在用的是几段的？需要换段吗？") == "needs_reply"


def test_verdicts_come_in_order_with_a_score_that_agrees_with_the_label():
    clf: NeedsReplyClassifier = default_classifier()
    batch = [("好的", "确定要取消吗？"), ("谢谢", None), ("什么时候到", "已发货")] * 50
    verdicts = clf.classify(batch)
    assert len(verdicts) == len(batch)
    assert [v.label for v in verdicts[:3]] == ["needs_reply", "closing", "needs_reply"]
    for v in verdicts:
        assert isinstance(v, Verdict) and 0 <= v.score <= 1
        assert (v.score >= 0.5) == (v.label == "needs_reply")
    assert clf.classify([]) == []


def test_cli_contract_one_json_line_out_per_json_line_in():
    lines = [
        {"text": "好的谢谢", "context": "退款已经提交了"},
        {"text": "好的", "context": "确定要取消吗？"},
        {"text": "怎么开发票"},
        {"text": "👍", "context": None},
    ]
    stdin = io.StringIO("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines) + "\n")
    stdout = io.StringIO()
    assert run_cli(stdin, stdout, batch_size=3) == 4
    out = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert [o["label"] for o in out] == ["closing", "needs_reply", "needs_reply", "closing"]
    assert all(set(o) == {"label", "score"} and isinstance(o["score"], float) for o in out)


def test_cli_names_the_line_it_cannot_read():
    with pytest.raises(ValueError, match="line 2"):
        run_cli(io.StringIO('{"text": "好的"}\nnot json\n'), io.StringIO())


def test_english_and_mixed_closings():
    for text in ["ok thank you", "Thanks!", "got it", "OK 谢啦", "thx"]:
        assert label(text) == "closing", text


def test_long_runs_of_closing_words_stay_fast():
    """A single regex over the phrase classes backtracks exponentially on these."""
    import time

    clf = default_classifier()
    batch = [((unit * 30)[:47] + "x", None) for unit in ("哦哦好", "谢谢亲", "好吧好的", "好好的的")]
    start = time.perf_counter()
    assert [v.label for v in clf.classify(batch)] == ["needs_reply"] * 4
    assert time.perf_counter() - start < 0.5
