"""The needs-reply classifier as a user of the inbox sees it, and the `siyu needs-reply` contract."""

from __future__ import annotations

import io
import json

import pytest

from siyu.conversations.render import render
from siyu.insights import NeedsReplyClassifier, Verdict, default_classifier
from siyu.insights.needs_reply import (
    context_kind,
    grammar_leaves_content,
    normalize,
    reader_would_read,
    run_cli,
)

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


@pytest.mark.parametrize("text", ["。", "!!", "~"])
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
        "您看周六可以吗？",
        "是否同意按这个方案处理？",
        "请问是这个订单吗？",
        "帮您换成M码可以吗？",
    ],
)
@pytest.mark.parametrize("text", ["嗯", "好的", "可以", "好的谢谢", "行", "👍", "[OK]"])
def test_a_bare_acknowledgement_answering_a_decision_question_needs_a_reply(staff, text):
    assert label(text, staff) == "needs_reply"
    assert label(text, DONE) == "closing"


@pytest.mark.parametrize(
    "staff",
    [
        "黑色和白色哪个更好看？",
        "您注重手机的什么功能呢  拍照还是玩游戏呢",
        "您的订单号是多少呢？",
        "您是在哪个门店买的？",
    ],
)
def test_a_question_only_for_information_is_answered_bare_and_left_with_thanks(staff):
    # 好的 / 可以 / 没有 may be the answer the staff waits for; with thanks the customer leaves
    # the question unanswered, and nothing waits on the staff
    for answer in ("好的", "可以", "嗯", "没有", "👍"):
        assert label(answer, staff) == "needs_reply", answer
    for leaving in ("好的谢谢", "好吧谢谢", "谢谢", "嗯嗯 谢谢亲", "不用了谢谢"):
        assert label(leaving, staff) == "closing", leaving


@pytest.mark.parametrize(
    "staff",
    [
        "需要帮您换成黑色还是白色？",
        "给您换新还是退款呢？",
        "您看哪天给您安排上门？",
        "要哪个颜色，给您备注吗？",
    ],
)
def test_a_question_that_puts_what_the_staff_would_do_is_answered_even_with_thanks(staff):
    assert label("好的谢谢", staff) == "needs_reply"


def test_a_request_that_says_why_the_staff_asks_is_still_a_request():
    # the purpose (方便小妹帮您查询) offers nothing to decide on: the customer will send the number
    staff = "您好，可以方便提供一下订单号吗，方便小妹帮您查询一下哦"
    for text in ("好的", "麻烦了", "嗯嗯 稍等"):
        assert label(text, staff) == "closing", text
    assert label("好的", "方便提供一下订单号吗？需要帮您加急处理吗") == "needs_reply"


@pytest.mark.parametrize(
    "staff", ["您对产品的参数和配置有什么需求呢？我可以为您解答的哦~", "请问您有什么疑问吗？"]
)
def test_nothing_answers_what_questions_the_customer_has(staff):
    for text in ("没有了，谢谢", "没问题啦，谢谢", "没有"):
        assert label(text, staff) == "closing", text
    assert label("有的", staff) == "needs_reply"
    assert label("有，发票怎么开", staff) == "needs_reply"


@pytest.mark.parametrize(
    "text", ["嗯嗯，好的，我跟快递员联系一下", "我跟商家沟通一下", "那我给快递员打电话吧"]
)
def test_taking_it_up_with_the_courier_oneself_is_closing(text):
    assert label(text, "拒收后商品退回预计需要2-3天的呢") == "closing"
    assert label(text + " 他说不给退", "拒收后商品退回预计需要2-3天的呢") == "needs_reply"


@pytest.mark.parametrize(
    ("text", "staff"),
    [
        ("我已经跟商家说了", "建议您联系商家处理哦"),  # done already: pushes back
        ("我跟快递说了", "建议您联系快递员"),
        ("我只想问清楚", "这个是系统规定的"),
        ("我的问题呢", "已经帮您反馈了"),
        ("没看清楚", "请按图片中的步骤操作。"),
        ("怪我咯", "这个是您自己选的地址呢"),
        ("[数字]分", "您的积分是多少呢"),
    ],
)
def test_pushing_back_or_asking_again_needs_a_reply(text, staff):
    assert label(text, staff) == "needs_reply"


@pytest.mark.parametrize(
    "staff",
    ["订单编号:[订单x]", "亲，是这个吧", "请问是这个电话号码嘛~", "您是不是取消订单了。", DONE, None],
)
@pytest.mark.parametrize("text", ["是的", "对", "嗯 对", "是啊", "对的呢", "没错"])
def test_a_bare_yes_confirms_what_the_staff_put_to_the_customer(staff, text):
    # in real service chats a customer confirms an order, a product, a number with it and
    # goes on; they sign off with 好的 / 谢谢, not with 是的
    assert label(text, staff) == "needs_reply"
    assert label(text, "这样说明白了吗？") == "closing"  # yes, understood


@pytest.mark.parametrize(
    "staff",
    [
        "是的呢",
        "会送到的呢",
        "这边已经帮您跟站点反馈了呢",
        "您的商品在给您配送时配送员跟您联系的呢",
        "好的， 那么您保持手机畅通哈",
    ],
)
@pytest.mark.parametrize("text", ["好的", "好吧", "哦哦", "好的 谢谢"])
def test_a_softening_ne_or_name_in_a_staff_statement_asks_nothing(staff, text):
    assert label(text, staff) == "closing"


@pytest.mark.parametrize(
    "staff",
    ["请问还有可以为您服务的吗?", "有什么问题我可以帮您处理或解决呢?", "请问您的问题是否完全帮您解决了呢?"],
)
@pytest.mark.parametrize("text", ["没有了", "没了再见", "没有 没事", "解决了，谢谢", "没有咯"])
def test_service_phrasings_of_anything_else_are_closing_checks(staff, text):
    assert label(text, staff) == "closing"


@pytest.mark.parametrize(
    "text",
    [
        "好的[姓名x]",
        "好吧 [姓名1]",
        "添麻烦了",
        "给你们添麻烦了",
        "那就让你费心了",
        "明白了 谢谢您阿",
        "没有问题了",
        "我已经联系上了 谢谢",
        "那我再转转",
        "那我明天查询一下",
        "美了",
        "客气啦",
        "成",  # northern OK
    ],
)
def test_closing_remarks_seen_in_real_service_chats(text):
    assert label(text) == "closing"


@pytest.mark.parametrize(
    "staff",
    [
        "还有一张优惠券可以帮您申请，需要吗？",
        "店铺还有赠品可以为您申请哦，需要吗？",
        "这个问题需要为您升级处理解决，可以吗？",
        "那您希望怎么解决呢？",
        "您想要什么尺码呢",
        "您需要几件呢",
        "您是在哪家门店买的呢",
    ],
)
@pytest.mark.parametrize("text", ["好的", "可以", "嗯"])
def test_offers_and_questions_ending_in_ne_are_not_closing_checks(staff, text):
    assert label(text, staff) == "needs_reply"


@pytest.mark.parametrize("text", ["对对", "对对对", "是的是的", "是的没错", "嗯嗯 对对"])
def test_a_repeated_yes_confirms_as_much_as_a_single_one(text):
    assert label(text, "订单编号:[订单x]") == "needs_reply"
    assert label(text, "还有其他问题吗？") == "needs_reply"


def test_a_masked_name_alone_answers_the_staff():
    assert label("[姓名x]", "请提供一下收货人姓名") == "needs_reply"
    assert label("[姓名x]", "收货人写的是哪位？") == "needs_reply"
    assert label("[姓名1]", None) == "needs_reply"  # calling someone


def test_a_masked_name_alone_after_a_statement_signs_off():
    assert label("[姓名x]", "好的，我们会改进的哦") == "closing"


@pytest.mark.parametrize("text", ["[链接x]", "[图片1]", "好的 [订单x]", "那么我的订单呢"])
def test_masked_links_and_placeholders_still_need_a_reply(text):
    assert label(text) == "needs_reply"


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


def test_a_staff_question_with_an_explanation_after_it_is_still_the_question():
    offer = "需要帮您取消订单吗？取消后优惠券会自动退回到您的账户里。"
    assert label("好的", offer) == "needs_reply"
    assert label("可以", "给您补偿5元无门槛券可以吗？[玫瑰][玫瑰][玫瑰]") == "needs_reply"
    assert label("好的", "麻烦您查看是否有“修改”按钮，没有就是不能改了。") == "closing"


@pytest.mark.parametrize("staff", ["您可以给个评价吗", "辛苦您给我的服务打个分哦~"])
def test_a_request_for_a_review_is_answered_by_an_acknowledgement(staff):
    assert label("好", staff) == "closing"
    assert label("好的 谢谢", staff) == "closing"


@pytest.mark.parametrize(
    "text",
    [
        "唉 谢谢你",
        "好吧 下次我注意点",
        "再会",
        "谢谢 提前祝您节日快乐",
        "再次谢谢你",
        "发票能看到了",
        "其它没有了 谢谢你",
        "没有了宝贝",
        "那算了 不用改了",
        "行 等你们回话",
        "要是还不行我再联系客服",
        "好滴ヾ ^_^ 多谢",
        "⊙o⊙ 好的 谢啦",
        "好的o(∩_∩)o",
        "没了 结束对话",
        "搞好了 谢谢",
        "哦 那就好",
        "好吧 我再等等看",
        "那我下午来一趟",
        "好的 我先问问他",
        "一定给你五星评价",
        "不用麻烦你们了 谢谢",
        "好的 麻烦你咯",
        "实在不好意思",
        "五星好评那是必须的",
        "谢谢你们送的小礼物",
        "以后会继续关注的",
        "我在找找看",
    ],
)
def test_more_closing_remarks_seen_in_real_service_chats(text):
    assert label(text) == "closing"


@pytest.mark.parametrize("text", ["好的谢谢亲#E-s21", "#e-s05", "收到#E-s57#E-s57"])
def test_numbered_emoji_placeholders_of_chat_exports_are_emoji(text):
    assert label(text) == "closing"


@pytest.mark.parametrize(
    "text", ["哦 我还以为出问题了", "好的 我还以为下错了", "我以为我弄错了", "我以为坏了呢 谢谢"]
)
def test_relief_that_a_feared_mistake_did_not_happen_is_closing(text):
    assert label(text, "您的两件商品是分开发货的，都在路上了") == "closing"


@pytest.mark.parametrize(
    "text",
    [
        "我以为包邮的",
        "我以为是两个包裹呢",
        "我以为包邮？",
        "我以为今天能到 怎么还没到",
        "我还以为能退 但是没收到退款",
    ],
)
def test_a_disappointed_expectation_needs_a_reply(text):
    assert label(text, "亲，您的地址需要补10元运费哦") == "needs_reply"


@pytest.mark.parametrize(
    ("text", "staff"),
    [
        ("那就后天吧", "明天的车排满了，后天或者大后天都可以"),
        ("定周六上午", "周六上午和周日下午还有名额"),
        ("好 按你说的办", "我们可以给您换个新的，需要您先把旧的寄回来"),
        ("好的 听你的", "我建议您换成大一码的，这款偏小"),
        ("就买它啦", "这款今天团购价39元"),
        ("嗯 那我先买两盒", "这个面膜今天买二送一"),
        ("能退款就行", "您这个情况我们可以给您补偿10元，或者退货退款"),
        ("好的 麻烦你", "我这边可以帮您催一下快递"),
    ],
)
def test_agreeing_to_what_the_staff_offered_leaves_them_something_to_do(text, staff):
    assert label(text, staff) == "needs_reply"


@pytest.mark.parametrize("text", ["嗯(｀д′)", "好吧(╬ﾟдﾟ)", "叫师傅再来看看", "让老师再看看", "你们再仔细看看"])
def test_an_angry_face_or_a_request_to_look_again_needs_a_reply(text):
    assert label(text, "我们这边检测过了，这个是正常的") == "needs_reply"


@pytest.mark.parametrize("text", ["还是晕", "晕晕的", "还在出汗"])
def test_a_symptom_is_not_a_sigh(text):
    assert label(text, "这个药先吃三天，观察一下效果") == "needs_reply"


@pytest.mark.parametrize(
    "text",
    [
        "好哒，等你好消息",
        "收到 我周六带孩子过来",
        "好的 我让我老公联系你",
        "知道了 我会按时来复诊的",
        "嗯嗯 我会提醒孩子的",
        "好的 我转告他",
        "好的 麻烦老师了",
        "好的，我们准时到",
        "好的 到了给你打电话",
        "好的 我到了再说",
        "好的 我问问我爸",
        "好 我想好了联系你",
        "谢了哥们",
    ],
)
def test_closing_remarks_of_other_trades(text):
    # schools, clinics, car dealers, salons: not only shops
    assert label(text, "孩子这周的作业已经批改完了，整体不错。") == "closing"


def test_a_plan_of_ones_own_with_a_question_needs_a_reply():
    assert label("我会按时来的 但是迟到了怎么办") == "needs_reply"


@pytest.mark.parametrize(
    "text",
    [
        "哦 原来是这样用的",
        "那先用着吧 谢谢啦",
        "奥奥",
        "那先不问了",
        "明天试一试再说",
        "样子很满意",
    ],
)
def test_closing_remarks_from_after_sales_chats(text):
    assert label(text, "壶体放在底座上左右转一圈就能加热了") == "closing"


def test_saying_the_staff_how_to_worked_is_closing():
    how_to = "手放在顶部往下推就可以取出来"
    for text in ("推出来了", "好了 拧开了", "装上了 谢谢"):
        assert label(text, how_to) == "closing"
    for text in ("推不出来", "拧坏了", "还是卡住了"):
        assert label(text, how_to) == "needs_reply"
    assert label("可以了", "您再试一下，现在可以了吗？") == "closing"


@pytest.mark.parametrize(
    "text",
    [
        "真的很感谢",
        "还是要谢谢你",
        "好的 麻烦你了",
        "暂不用了",
        "嗯嗯 没事就好",
        "行 我联系他吧",
        "好的 我已经发信息给快递小哥了",
        "我等着信儿",
        "谢谢 好妹子",
        "没了 我就是问一下",
        "有什么事跟我再联系就行",
        "能用就行 将就着用吧",
        "太神奇了 找到了",
    ],
)
def test_closing_remarks_of_jd_chats(text):
    assert label(text) == "closing"


def test_never_mind_after_a_statement_is_closing_but_after_an_offer_it_says_go_ahead():
    assert label("没事了") == "closing"
    assert label("没关系", "这个尺码没有了，给您换成大一码的可以吗？") == "needs_reply"


def test_a_demand_is_not_an_of_course():
    assert label("必须今天到") == "needs_reply"
    assert label("那是必须的") == "closing"


def test_what_in_a_question_still_needs_a_reply():
    assert label("有什么优惠") == "needs_reply"
    assert label("还有什么颜色") == "needs_reply"


def test_still_and_or_are_both_haishi():
    assert label("好", "价格我们还是按原价的哦") == "closing"
    assert label("好的", "您是要退款还是换货") == "needs_reply"


def test_after_the_opening_line_only_nothing_needs_no_reply():
    opening = "请问有什么需要帮助您的呢"
    assert label("没了", opening) == "closing"
    for text in ("打扰了", "是这样的", "老师好", "嗯嗯", "是的", "哈喽！"):
        assert label(text, opening) == "needs_reply"
    assert label("hi", None) == "needs_reply"


def test_jd_greeting_without_else_is_the_opening_line_not_a_closing_check():
    greeting = "您好，有什么问题我可以帮您处理或解决呢?"
    assert context_kind(greeting) == "opening"
    assert context_kind("请问还有什么问题我可以帮您处理或解决呢?") == "closing_check"
    assert context_kind("有什么问题我还可以帮您解决呢?") == "closing_check"
    for check in (
        "有什么需要我可以帮您的吗？",
        "有什么需要小妹能为您效劳的吗？",
        "有什么需要这边可以帮您的吗？",
    ):
        assert context_kind(check) == "closing_check" and label("没有了", check) == "closing"
    # the customer who has just come in starts on their matter: it is not read as a closing
    for text in ("手机号不用了", "退款", "嗯嗯", "好的"):
        assert label(text, greeting) == "needs_reply"
    for text in ("没有了", "解决了，谢谢"):
        assert label(text, greeting) == "closing"


def test_agreeing_to_send_a_photo_is_closing():
    assert label("好的", "辛苦您拍张照片过来给我看看吗") == "closing"


def test_nothing_else_and_a_deferral_after_a_closing_check():
    assert label("没有了，如有需要再联系你", "您看还有其他可以帮到您的么") == "closing"
    assert label("没有，我等你们回话", "您看还有其他可以帮到您的么") == "closing"


@pytest.mark.parametrize(
    "text", ["唉 还没到", "晕 怎么又坏了", "下次注意点 别再发错了", "^_^ 在吗", "我在等", "那我买几个"]
)
def test_a_sigh_or_a_kaomoji_does_not_hide_a_complaint_or_a_call(text):
    assert label(text) == "needs_reply"


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


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("{}", "text is missing"),
        ('{"txt": "在吗"}', "text is missing"),
        ('{"text": "好的", "context": 5}', "context"),
        ("[" * 200_000, "nested too deeply"),  # had ended in a RecursionError, nothing answered
        ("\u3000", "not JSON"),  # str.strip's blank, not JSON's: had been skipped unanswered
        ("\x1c", "not JSON"),
    ],
)
def test_cli_refuses_a_line_without_its_text_after_answering_the_lines_before(line, why):
    stdout = io.StringIO()
    stdin = io.StringIO('\ufeff{"text": "好的谢谢"}\n{"text": "在吗"}\n' + line + '\n{"text": "好的"}\n')
    with pytest.raises(ValueError, match=f"line 3: .*{why}"):
        run_cli(stdin, stdout, batch_size=10)
    assert [json.loads(x)["label"] for x in stdout.getvalue().splitlines()] == ["closing", "needs_reply"]


def test_the_command_reads_utf8_and_refuses_other_bytes():
    from typer.testing import CliRunner

    from siyu.cli import app

    ok = CliRunner().invoke(app, ["needs-reply"], input='{"text": "好的谢谢"}\n'.encode())
    assert ok.exit_code == 0 and json.loads(ok.output)["label"] == "closing"
    gbk = CliRunner().invoke(app, ["needs-reply"], input='{"text": "好的"}\n'.encode("gbk"))
    assert gbk.exit_code == 1 and "line 1: not UTF-8" in gbk.output


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


# ------------------------------------------------------------------ casual customer styles


@pytest.mark.parametrize(
    "text",
    ["好的鸭", "收到鸭 谢谢", "好叭", "谢谢您嘞", "好耶", "0k", "hao de", "haode xiexie", "thank u", "搞定"],
)
def test_net_spellings_and_particles_are_closing(text):
    assert label(text) == "closing"


@pytest.mark.parametrize("text", ["谢谢宝子", "好的亲爱哒", "好的 谢谢掌柜的", "谢谢姐妹", "好的 麻烦亲了"])
def test_e_commerce_forms_of_address_after_a_closing_are_closing(text):
    assert label(text) == "closing"


@pytest.mark.parametrize("text", ["掌柜的", "小二", "宝子"])
def test_a_form_of_address_alone_calls_for_attention(text):
    assert label(text, None) == "needs_reply"


def test_repeated_closing_words_are_closing():
    assert label("不用不用", "您好，请问需要为您开通流量包吗？") == "closing"
    assert label("没了没了 谢谢", "还有其他需要帮您的吗？") == "closing"
    assert label("理解理解") == label("找到了找到了") == label("没事没事 理解") == "closing"


@pytest.mark.parametrize(
    "text",
    ["退款收到了 谢谢", "快递收到了", "宽带修好了", "问题已解决", "收到退款了", "终于好了", "钱到账了 谢谢"],
)
def test_saying_the_matter_is_settled_is_closing(text):
    assert label(text, None) == "closing"


@pytest.mark.parametrize(
    "text", ["东西到了 但是少了", "快递到了 不是我的", "网好了又断了", "我到了", "退款到了吗", "修好了没"]
)
def test_settled_words_with_a_complaint_or_question_need_a_reply(text):
    assert label(text, None) == "needs_reply"


@pytest.mark.parametrize("text", ["确认收货了", "已经好评了 [玫瑰]", "已收货 谢谢"])
def test_reporting_the_end_of_a_purchase_is_closing(text):
    assert label(text, None) == "closing"


@pytest.mark.parametrize(
    "text",
    ["已付款", "付好了", "寄出了", "已寄出 [抱拳]", "已经付款了 还没发货", "好评了 返现呢"],
)
def test_a_payment_an_order_or_a_parcel_sent_is_news_the_staff_act_on(text):
    assert label(text, None) == "needs_reply"


@pytest.mark.parametrize(
    "text",
    [
        "好的 我下午去寄",
        "收到 下班去拿",
        "好 我清一下",
        "我查一下订单号",
        "好 那我下楼等",
        "好的 我等短信",
        "那我再等两天",
        "好 有消息告诉我哈",
        "算了 我自己处理吧",
        "行 我考虑一下 周五前答复你",
        "等我一下",
        "行 那我明天再问",
    ],
)
def test_saying_what_one_will_do_next_is_closing(text):
    assert label(text) == "closing"


@pytest.mark.parametrize("text", ["我问一下", "我在等", "我等了三天了", "明天不在"])
def test_not_every_first_person_remark_is_a_deferral(text):
    assert label(text) == "needs_reply"


def test_a_change_of_mind_is_closing_unless_it_answers_a_decision_question():
    assert label("不退了") == "closing"
    assert label("算了 不退了", "亲亲 确定要申请退货退款吗？") == "closing"
    assert label("好的 那我先不退了", None) == "closing"
    assert label("不取消了", "确定要取消吗？") == "needs_reply"
    assert label("不退了 直接换") == "needs_reply"


@pytest.mark.parametrize(
    "text", ["东西挺好的 谢谢", "好吃 下次还点", "你们服务真的太好了 下次还来买", "质量很好"]
)
def test_praising_the_goods_is_closing(text):
    assert label(text, None) == "closing"


@pytest.mark.parametrize("text", ["不好吃", "质量不太好", "大小不合适", "还不错 就是有点小"])
def test_faint_or_negated_praise_needs_a_reply(text):
    assert label(text, None) == "needs_reply"


@pytest.mark.parametrize(
    "text", ["谢谢帮忙", "谢谢你的帮忙", "拜托了", "你们也辛苦了", "不用谢", "没啥事了", "没什么问题了"]
)
def test_more_thanks_and_nothing_else(text):
    assert label(text) == "closing"


@pytest.mark.parametrize("text", ["帮忙看下", "你帮忙查一下", "没什么用", "没啥反应", "那我呢", "我的呢"])
def test_requests_and_complaints_near_those_words_need_a_reply(text):
    assert label(text) == "needs_reply"


@pytest.mark.parametrize(
    "text, staff",
    [
        ("好的", "您好，请问需要帮您取消订单吗？"),
        ("是的", "亲 是这个订单吗？ 尾号3321"),
        ("可以", "亲 给您退个差价可以吗？"),
        ("好的？？", DONE),
        ("嗯？", DONE),
        ("收到了 但是坏了", DONE),
        ("谢谢 那运费谁出", DONE),
        ("ok 发票呢", DONE),
        ("能便宜点不", None),
        ("收费不", None),
    ],
)
def test_casual_messages_that_look_like_closings_but_need_a_reply(text, staff):
    assert label(text, staff) == "needs_reply"


@pytest.mark.parametrize("text", ["晚点再说", "到时候再说", "过两天再说吧", "先这样 明天再说哈"])
def test_putting_it_off_till_later_is_closing(text):
    assert label(text, "这款下周有活动") == "closing"


@pytest.mark.parametrize("text", ["再说一遍", "你再说一下", "再说一下价格", "再说吗"])
def test_asking_to_say_it_again_needs_a_reply(text):
    assert label(text, "这款下周有活动") == "needs_reply"


@pytest.mark.parametrize("text", ["我记错了", "打错字了", "发错了", "搞错了", "地址填错了"])
def test_a_slip_after_the_staff_acted_on_it_needs_a_reply(text):
    assert label(text, "好的，已经帮您把预约改到周四上午了") == "needs_reply"


@pytest.mark.parametrize("text", ["等我收到货再联系你", "稍等我找下发给你", "我待会拍给您看", "好把", "o"])
def test_more_ways_of_saying_one_will_come_back(text):
    assert label(text, "出水口在底座左边") == "closing"


@pytest.mark.parametrize("text", ["等我下班再说吧", "我在联系你们"])
def test_putting_off_a_decision_the_staff_asked_for_needs_a_reply(text):
    assert label(text, "师傅已经到楼下了，您方便下来取一下吗") == "needs_reply"


@pytest.mark.parametrize("text", ["哎", "唉……", "额", "那", "啊？", "嗐"])
def test_a_sigh_or_a_hesitation_alone_needs_a_reply(text):
    assert label(text, "抱歉，这款暂时不支持预约哦") == "needs_reply"


def test_a_sigh_with_a_closing_phrase_is_still_closing():
    assert label("唉 好吧", "抱歉，这款暂时不支持预约哦") == "closing"


def test_nothing_answers_the_opening_line():
    for text in ("没什么", "没有别的事"):
        assert label(text, "您好，请问有什么可以帮您？") == "closing"
    assert label("好的", "您好，请问有什么可以帮您？") == "needs_reply"
    # Said to an apology for the wait, it lets the customer go on: their question is still open.
    assert label("没事没事", "抱歉久等了，请问有什么可以帮您？") == "needs_reply"


@pytest.mark.parametrize(
    "offer",
    [
        "不着急的话可以给您补发一个滤网的呢",
        "可以再给您寄一个新的",
        "周六可以帮您约到下午三点",
        "这边可以为您办理退货",
        "可以给孩子安排一节试听课",
        "可以免费上门取件的",
        "最多可以给您便宜两百",
    ],
)
def test_a_bare_yes_to_an_offer_made_as_a_statement_is_the_go_ahead(offer):
    assert label("行", offer) == "needs_reply"
    assert label("那好吧", offer) == "needs_reply"
    assert label("不用了 谢谢", offer) == "closing"


@pytest.mark.parametrize(
    "staff",
    [
        "已经给您补发了，单号稍后同步",
        "您可以在订单页申请退款",
        "抱歉，这个不能给您更换哦",
        "能给您补发的配件都已经寄出了",
    ],
)
def test_no_offer_no_go_ahead(staff):
    assert label("好的", staff) == "closing"


@pytest.mark.parametrize("staff", ["您看这样行不行", "给您换个新的好不好", "打个九折您看咋样"])
def test_asking_whether_it_will_do_is_a_question(staff):
    assert label("行", staff) == "needs_reply"


@pytest.mark.parametrize("text", ["。。。", "……", "..", "…"])
def test_dots_alone_say_the_customer_is_speechless(text):
    assert label(text, "这个型号就是这样设计的哦") == "needs_reply"


@pytest.mark.parametrize("text", ["现在能正常工作了", "好像能用了", "貌似好了"])
def test_saying_the_thing_works_now_is_closing(text):
    assert label(text, "拔掉电源等一分钟再开机试试") == "closing"


@pytest.mark.parametrize("text", ["不工作了", "又打开了", "应该到账了吧", "我现在在工作", "好像又在响"])
def test_a_fault_back_a_doubt_or_a_job_is_not_it_works_now(text):
    assert label(text, "已经帮您把自动开机关掉了") == "needs_reply"


@pytest.mark.parametrize(
    "text",
    ["我先看看能不能用", "好 我今晚再试一下看看", "我找找看有没有发票", "我明天再试一次"],
)
def test_checking_for_oneself_whether_it_works_is_closing(text):
    assert label(text, "您按说明书重新安装一下试试") == "closing"


@pytest.mark.parametrize(
    "text",
    [
        "看看能不能便宜点",
        "你看看能不能今天发",
        "能不能便宜点",
        "帮我看看有没有货",
        "我想看看有没有周末的班",
        "我这单帮看看有没有发出",
        "师傅再来试一次",
        "已经试一遍了",
    ],
)
def test_asking_the_staff_to_see_whether_is_a_request(text):
    assert label(text, "您按说明书重新安装一下试试") == "needs_reply"


def test_a_staff_statement_that_cannot_say_when_asks_nothing():
    staff = "补货时间由仓库安排，我们也没法确定什么时候到，抱歉"
    assert label("好的 谢谢", staff) == "closing"


@pytest.mark.parametrize("text", ["好的?谢谢", "谢谢你?", "嗯嗯?谢谢啦"])
def test_a_question_mark_beside_thanks_asks_nothing(text):
    assert label(text) == "closing"


@pytest.mark.parametrize(
    "text", ["好的?", "谢谢，那运费呢?", "打扰一下", "修好了是吧", "到账了是吧亲", "明天发?谢谢", "谢谢??"]
)
def test_real_questions_near_thanks_still_need_a_reply(text):
    assert label(text) == "needs_reply"


@pytest.mark.parametrize("text", ["我在找订单号 稍等", "那我重新下单吧", "要是还不行我在联系你"])
def test_more_of_the_customers_own_next_steps(text):
    assert label(text, "您看下订单页面，没有的话就是没拍上") == "closing"


@pytest.mark.parametrize("text", ["我在联系你们", "我到了在找你呢", "重新下单了"])
def test_what_the_customer_is_doing_now_or_has_done_is_news(text):
    assert label(text, "好的") == "needs_reply"


def test_a_question_after_cannot_say_when_still_asks():
    assert label("好的", "没法确定什么时候到货，您要不要先退款") == "needs_reply"
    assert label("可以", "不知道您明天上午方便吗") == "needs_reply"


def test_dots_with_a_sticker_are_still_speechless():
    assert label("。。。[微笑]", "这个不在保修范围内哦") == "needs_reply"


DOCTOR = "这个情况多喝水、多休息，一般三五天会好转的。"


@pytest.mark.parametrize(
    "text",
    [
        "好的谢谢医生",
        "嗯嗯 谢谢大夫",
        "好的 谢谢医生解答",
        "感谢 您的解答很详细",
        "您的解释很清楚 谢谢",
        "好的 这下放心多了 谢谢",
        "您这么说我就放心了",
        "那太好了",
        "谢谢医生 您早点休息",
        "刚刚解决了 谢谢",
    ],
)
def test_thanks_to_the_doctor_relief_and_praise_of_the_answer_are_closing(text):
    assert label(text, DOCTOR) == "closing"


@pytest.mark.parametrize(
    "text",
    [
        "谢谢 但是还是打不开",
        "谢谢 开一张发票",
        "谢谢医生 我胸口还是有点闷",
        "谢谢 衣服有点小",
        "谢谢医生 观察了一天 晚上还是发烧",
        "明天之前能到就放心了",
        "要是不会留疤就放心了",
        "你们真了不起",
        "辛苦了 师傅有空过来一趟",
    ],
)
def test_thanks_or_relief_beside_trouble_a_request_or_a_hope_still_needs_a_reply(text):
    assert label(text, DOCTOR) == "needs_reply"


@pytest.mark.parametrize(
    "text", ["明天我去复查一下", "那我先观察两天", "有症状我马上去医院", "好的 我近期去售后看看"]
)
def test_the_patients_own_next_steps_are_closing(text):
    assert label(text, DOCTOR) == "closing"


def test_saying_it_is_solved_ends_the_matter_even_after_a_question():
    assert label("已经解决了 谢谢", "请问是哪个页面打不开呢？") == "closing"
    assert label("好的", "请问是哪个页面打不开呢？") == "needs_reply"
    # 搞定 / 解决了就行 as "deal" answers the offer
    assert label("嗯 搞定吧", "确定要取消这个订单吗？") == "needs_reply"
    assert label("好的 解决了就行", "需要帮您安排师傅上门吗？") == "needs_reply"


@pytest.mark.parametrize(
    "staff",
    [
        "是否需要手术要由外科医生来决定",
        "具体还要看复查的结果怎么样",
        "缺损不大的话，还是有可能自己长好的",
        "CT还是尽量去拍一下",
    ],
)
def test_saying_who_decides_or_what_it_depends_on_asks_nothing(staff):
    assert label("好的", staff) == "closing"


@pytest.mark.parametrize(
    "staff",
    [
        "您看有没有时间过来一趟",
        "您是否需要我们上门安装",
        "您家里有没有老人",
        "您要不要看看这个套餐怎么样",
        "是否需要帮您预约专家确定手术方案",
        "您是想退款还是有其他需求",
        "明天上午上门，得看您这边时间怎么样",
    ],
)
def test_asking_the_customer_whether_still_asks(staff):
    assert label("好的", staff) == "needs_reply"


@pytest.mark.parametrize(
    "staff",
    [
        "请问问题解决了吗？",
        "请问您的网络是否恢复正常了呢？",
        "现在可以正常使用了吗？",
        "退款到账了吗？",
        "宽带修好了吗",
    ],
)
def test_asked_whether_the_trouble_is_over_yes_closes_and_no_needs_a_reply(staff):
    for yes in ("是的", "可以了", "嗯嗯 好了 谢谢", "没问题了", "没错", "没什么问题了"):
        assert label(yes, staff) == "closing", yes
    for no in ("没有", "没有呢", "还没", "还是不行", "没有 谢谢"):
        assert label(no, staff) == "needs_reply", no


def test_a_question_the_customer_must_decide_is_not_a_check_that_the_trouble_is_over():
    assert label("可以", "这样可以吗？") == "needs_reply"
    assert label("嗯", "您想好了吗？") == "needs_reply"
    assert label("好了", "您准备好了吗？") == "needs_reply"


@pytest.mark.parametrize(
    "staff",
    [
        "建议你用一下莫沙必利或者吗丁啉。",  # a medicine's name, not a question
        "效果是一样的，只要不要奶前吃就可以。",
        "可以给孩子吃点益生菌，或者是妈咪爱",  # a doctor's advice, not an offer
        "先吃三天药，看看效果如何？平时多喝热水。",
    ],
)
def test_advice_that_only_looks_like_a_question_or_an_offer_is_acknowledged_with_ok(staff):
    assert label("好的", staff) == "closing"


def test_an_offer_to_arrange_something_for_a_child_still_wants_a_yes_answered():
    assert label("好的", "可以给孩子安排一节试听课") == "needs_reply"


@pytest.mark.parametrize(
    "text",
    [
        "感谢@中国联通客服 的帮助",
        "@李经理 好的 谢谢",
        "好的@张三\u2005",
        "谢谢你帮我解答了这么多问题",
        "谢谢，请关闭对话。",
    ],
)
def test_mentions_thanks_for_the_answers_and_closing_the_chat_are_closing(text):
    assert label(text, "已为您处理好了") == "closing"


@pytest.mark.parametrize(
    "text",
    ["@张三 什么时候发货", "帮我解答一下这个问题", "谢谢你帮我解答这么多问题 那退款呢"],
)
def test_a_mention_or_thanks_before_a_question_or_new_information_still_needs_a_reply(text):
    assert label(text, "已为您处理好了") == "needs_reply"


def test_an_e_mail_address_is_not_a_mention():
    assert "qq" in normalize("我的邮箱abc@qq.com").text
    assert "qq" in normalize("张三@qq.com").text


def test_yes_to_a_request_to_write_privately_is_closing():
    assert label("好的~", "亲，您可以将订单号私信给我吗？") == "closing"


@pytest.mark.parametrize("text", ["我就是问问大小合不合适", "那你的意思是混合喂养没问题", "这个贵不贵"])
def test_a_not_a_questions_and_checking_what_the_staff_meant_need_a_reply(text):
    assert not grammar_leaves_content(text, "亲 这款是标准码")  # asked, whatever the reader thinks
    assert label(text, "亲 这款是标准码") == "needs_reply"


@pytest.mark.parametrize(
    "text",
    [
        "收到 帮我问下包不包邮 谢谢",
        "好的 我想问下包不包邮 谢谢",
        "明白了 帮我看看合不合适 谢谢",
        "问一下包不包邮",
    ],
)
def test_asking_the_staff_to_find_out_whether_is_not_settling_it_alone(text):
    assert not grammar_leaves_content(text, "已经给您发货了")


def test_a_customer_checking_it_themselves_or_saying_not_at_all_is_no_a_not_a_question():
    assert label("不烦不烦 谢谢", "打扰您了") == "closing"
    assert label("好的 我自己看看合不合适", "亲 这款是标准码") == "closing"


@pytest.mark.parametrize("text", ["不大吃东西，精神也不太好", "你们推销太频繁了，很烦", "吃了两天还是不舒服"])
def test_trouble_or_annoyance_in_so_many_words_is_never_left_to_the_reader(text):
    assert not reader_would_read(text, "多喝水 注意休息")
    assert label(text, "多喝水 注意休息") == "needs_reply"


@pytest.mark.parametrize(
    ("staff", "text"),
    [
        ("请问宝宝大便是否正常？", "嗯"),  # a doctor asking about a symptom, not whether it is fixed
        ("宽带是否已经恢复正常了呢？如果还不行，可以给您安排师傅上门哦", "好的"),
        ("现在能用了吗？不行的话我这边给您申请换新", "嗯"),
        ("网络是否恢复正常了呢？", "没有 谢谢"),
        ("退款到账了吗？", "还没有 谢谢"),
        ("现在能用了吗？", "嗯嗯 恢复了 谢谢师傅 就是路由器太旧了 你们那可以换新的吧"),
        ("可以给孩子做一次免费的体质测评", "好的"),
        ("需要我私信您详细的报价单吗？", "好的"),
        ("需要我重新发一遍吗？", "好的"),
        ("退款还没到账吗？", "嗯"),  # yes, it still has not arrived
        ("是否需要给您恢复一下设置？", "好的"),
        ("宽带修好了吗，需要给您申请补偿吗？", "好的"),
        ("如果还有疑问可以随时联系我，现在给您办理退款可以吗？", "好的"),
        ("这是设计稿，您看看效果怎么样？", "可以"),
    ],
)
def test_what_only_looks_like_a_check_that_the_trouble_is_over_or_advice_still_wants_an_answer(staff, text):
    assert label(text, staff) == "needs_reply"


@pytest.mark.parametrize(
    "text",
    [
        "收到@王老师孩子发烧请假一天",  # a name run on into the request cannot be dropped
        "收到@王老师孩子发烧了",
        "好的@客服快递丢了",
        "@小王我的快递还没到 谢谢",
        "回答我的问题",
        "先解决我的问题",
        "谢谢帮我解决了这么多问题 还有个小事",
        "收到了 谢谢 上次说的那个积分还没加上",
        "感觉不好用 吸力很小",
        "好的谢谢 我前两天搬家了 收件地址得改成城东新家那边",
    ],
)
def test_thanks_or_a_name_before_something_outstanding_still_needs_a_reply(text):
    assert label(text, "已为您处理好了") == "needs_reply"


@pytest.mark.parametrize(
    "text",
    [
        "好的 我回家试试穿着合不合适",
        "买不买再说吧 谢谢",
        "辛苦老师了 给我解答了这么多问题",
        "现在没什么不舒服的了 谢谢医生",
    ],
)
def test_a_not_a_the_customer_settles_alone_and_trouble_that_is_gone_are_closing(text):
    assert label(text, "已为您处理好了") == "closing"


@pytest.mark.parametrize("text", ["好 不会取消吧", "好的，谢谢 不用再提供了吧", "哦哦 那改过来就行"])
def test_a_question_asked_with_ba_or_an_instruction_with_jiuxing_is_never_left_to_the_reader(text):
    assert not reader_would_read(text, "这边已经帮您备注了")
    assert label(text, "这边已经帮您备注了") == "needs_reply"


@pytest.mark.parametrize(
    "text",
    [
        "他家的人均消费是多钱呢",
        "再看看它周边还有什么餐馆",
        "还有一个就是系统自启App太多了,希望能再瘦身一些,谢谢",
    ],
)
def test_a_typed_short_how_much_what_else_and_one_more_thing_need_a_reply(text):
    assert label(text, "好的") == "needs_reply"


def test_what_else_is_a_question_but_not_in_a_promise_to_come_back():
    assert not grammar_leaves_content("还有什么需要准备的", "好的")
    assert grammar_leaves_content("我这边还有什么问题再找你", "好的")


@pytest.mark.parametrize(
    "staff",
    [
        "这边帮您核实一下，预计三点之前给您回电您看可以吗?",
        "这边小妹核实下，预计两小时内和您联系，您看可以么",
        "有结果两小时内短信通知您~可以吗",
    ],
)
def test_ok_to_the_staffs_plan_to_come_back_later_leaves_nothing_to_answer_now(staff):
    assert label("好的", staff) == "closing"
    assert label("不行 我下午没空", staff) == "needs_reply"


@pytest.mark.parametrize(
    "staff",
    [
        "这边帮您取消订单，之后短信通知您，可以吗？",  # a cancellation put to the customer
        "我们可以帮您修改，修改后短信通知您，你看可以吗",  # an offer: 可以 is the go-ahead
        "请您提供一下姓名和联系方式，我们明天给您回电，您看可以吗?",  # the customer has a step
    ],
)
def test_a_plan_to_come_back_that_also_wants_a_decision_or_a_step_is_still_answered(staff):
    assert label("好的", staff) == "needs_reply"


@pytest.mark.parametrize("staff", ["补偿您三十元的红包，您看可以吧", "给您赔付一个红包 您看行吧先生"])
def test_will_it_do_asked_with_ba_about_a_proposal_makes_ok_the_go_ahead(staff):
    assert label("哦行", staff) == "needs_reply"


@pytest.mark.parametrize(
    "staff",
    [
        "已经给您处理好了，您看可以吧",
        "那今天就先到这里，可以吧",
        "检查结果出来后医生会打电话通知您，这样可以吧",
    ],
)
def test_will_it_do_about_what_is_done_a_wrap_up_or_news_to_come_is_thanked_for(staff):
    assert label("好的谢谢", staff) == "closing"


def test_shall_i_without_a_question_mark_still_asks():
    assert label("可以", "要我帮您看下骑手现在到哪了") == "needs_reply"


@pytest.mark.parametrize(
    ("staff", "expected"),
    [
        ("我帮您查一下快递到哪里了", "closing"),  # the staff will check: nothing to answer
        ("帮您查一下快递到哪里了，您稍等", "closing"),
        ("请问您的快递到哪里了", "needs_reply"),  # the staff asks
        ("您看到哪里了？", "needs_reply"),
        ("我帮您查一下快递到哪里了，需要帮您催一下吗", "needs_reply"),
        ("需要我帮您查一下快递到哪里了", "needs_reply"),  # an offer
        ("帮您查一下维修进度到哪里了，是这台空调吧", "needs_reply"),
    ],
)
def test_the_staff_only_checking_where_something_has_got_to_asks_nothing(staff, expected):
    assert label("好的", staff) == expected


@pytest.mark.parametrize(
    "text", ["可以了嘛", "到了嘛", "对对对不是这个 我再给你提供一个", "我跟商家沟通过了"]
)
def test_is_it_done_a_correction_or_having_taken_it_up_already_needs_a_reply(text):
    assert label(text, "稍等 小美看下记录") == "needs_reply"


@pytest.mark.parametrize("text", ["知道了嘛", "好啦好啦 知道了嘛", "打过了 谢谢"])
def test_a_sulky_yes_or_having_called_already_with_thanks_is_closing(text):
    assert label(text, "骑手会联系您，请保持电话畅通") == "closing"


@pytest.mark.parametrize("text", ["可以结束服务啦", "离开人工会话", "好O K O K"])
def test_ending_the_service_and_a_spaced_ok_are_closing(text):
    assert label(text, "请问还有其他问题吗") == "closing"


@pytest.mark.parametrize(
    "text",
    ["为什么结束服务了", "先不要结束服务", "不要离开人工会话", "不要关闭会话", "o k吗", "我在上传 好了"],
)
def test_not_ending_yet_a_question_or_an_upload_done_still_needs_a_reply(text):
    assert label(text, "请问还有其他问题吗") == "needs_reply"


def test_no_problem_now_answers_a_question_about_the_problem_but_no_problem_agrees():
    assert label("没问题了", "具体是什么问题的呢？") == "closing"
    assert label("没问题", "确定要取消吗？") == "needs_reply"


@pytest.mark.parametrize(
    ("text", "expected"), [("好的? 麻烦了", "closing"), ("好的?麻烦你发一下", "needs_reply")]
)
def test_a_question_mark_before_thanks_for_the_trouble_asks_nothing(text, expected):
    assert label(text, "不客气哈，为您服务是我的荣幸") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("等待结果", "closing"), ("噢，感觉不牢固", "needs_reply"), ("就这样就行了嘛", "needs_reply")],
)
def test_waiting_for_the_result_a_flimsy_feel_and_is_that_all_it_takes(text, expected):
    assert label(text, "这边帮您核实，正常的呢") == expected


@pytest.mark.parametrize(
    ("staff", "expected"),
    [
        ("请您再观察一段时间，看消耗流量是否继续增加。", "closing"),  # an instruction to check
        ("请您在这里查看一下有没有临近您的售后服务点", "closing"),
        ("您看一下是否有修改按钮", "closing"),
        ("您看是否需要退款", "needs_reply"),  # the staff asks
        ("您看有没有需要的", "needs_reply"),
        ("重新下单的时候，请核实下地址是否正确哟~~", "closing"),
        ("您确认一下是否需要退款", "needs_reply"),  # an offer, put as a check
    ],
)
def test_checking_for_oneself_whether_is_an_instruction_but_you_see_whether_asks(staff, expected):
    assert label("好的", staff) == expected


@pytest.mark.parametrize("text", ["您太客气了", "稳妥", "[抱抱][抱抱]", "[给力]"])
def test_modesty_a_solid_ok_and_weibo_emoji_are_closing(text):
    assert label(text, "感谢您对我们的关注和支持") == "closing"


@pytest.mark.parametrize("text", ["行 那就办理吧", "那就改吧", "好的 那就办吧"])
def test_go_ahead_without_i_tells_the_staff_to_act(text):
    assert label(text, "换成这个套餐以后每月可以省二十元") == "needs_reply"
    assert label("那我就去办理", "换成这个套餐以后每月可以省二十元") == "closing"  # the customer's own step


@pytest.mark.parametrize("text", ["嗯", "额嗯", "好的"])
def test_a_bare_acknowledgement_after_a_shops_welcome_line_still_needs_a_reply(text):
    assert label(text, "欢迎光临华*官方旗舰店 为提升服务质量，您的咨询可能会被记录") == "needs_reply"
    assert label(text, "您的车已洗好 欢迎下次光临") == "closing"


@pytest.mark.parametrize("text", ["老师好", "医生好", "客服好", "美女好", "王总好"])
def test_a_name_and_hello_greets(text):
    assert label(text, None) == "needs_reply"
    assert label("好的老师", DONE) == "closing"


@pytest.mark.parametrize("text", ["做工好", "收到了 做工好", "质量不错 做工好"])
def test_praise_of_the_goods_ending_in_hao_is_no_greeting(text):
    assert label(text, "已经给您发货了，请注意查收") == "closing"


def test_cli_names_the_line_of_bad_bytes_among_many_and_answers_every_line_before():
    from typer.testing import CliRunner

    from siyu.cli import app

    good = '{"text": "好的谢谢", "context": "退款已经提交了"}\n'.encode()
    data = good * 250 + '{"text": "好的"}\n'.encode("gbk") + good * 49
    r = CliRunner().invoke(app, ["needs-reply"], input=data)
    assert r.exit_code == 1 and "line 251: not UTF-8" in r.output
    assert r.output.count('"label"') == 250


@pytest.mark.parametrize("text", ["那不打扰您啦！五一节快乐……", "不打扰了", "中秋节快乐"])
def test_not_disturbing_any_more_and_holiday_wishes_close(text):
    assert label(text, "是的") == "closing"


def test_trouble_named_with_wenti_is_not_read_as_a_remark():
    assert label("第一次买沁园的就遇到这种问题", "您申请了话") == "needs_reply"
    assert label("用了一个月没遇到问题 挺好", "您申请了话") == "closing"


@pytest.mark.parametrize(
    "text", ["麻烦备注一下周末送，谢谢~", "单号发您了 麻烦提醒快递员打电话 谢谢", "麻烦亲尽快安排"]
)
def test_thanks_after_a_request_made_with_mafan_still_needs_a_reply(text):
    assert label(text, "好的，已经为您查到订单了。") == "needs_reply"


@pytest.mark.parametrize(
    "text",
    [
        "麻烦你们了 谢谢",
        "今天麻烦你好久了",
        "麻烦你们白跑一趟",
        "麻烦大家了",
        "麻烦您费心了，谢谢",
        "麻烦到您了 谢谢",
        "麻烦您百忙之中回复，谢谢",
    ],
)
def test_thanking_for_the_trouble_is_closing(text):
    assert label(text, "已经为您处理好了") == "closing"


def test_a_bare_deal_with_it_is_for_the_staff_and_i_will_deal_with_it_is_not():
    assert label("处理下", "您的订单已经在配送中了") == "needs_reply"
    assert label("处理", "您耐心等待一下") == "needs_reply"
    assert label("处理下 谢谢", "您的订单已经在配送中了") == "needs_reply"
    assert label("亲 核实一下哈", "您的订单已经在配送中了") == "needs_reply"
    assert label("好的 我处理一下", "您可以重启一下路由器") == "closing"


@pytest.mark.parametrize("text", ["不用我再联系快递了吧", "那我不用再寄了吧"])
def test_asking_to_be_told_nothing_more_is_needed_asks(text):
    assert label(text, "已经为您登记了") == "needs_reply"


@pytest.mark.parametrize("context", ["那我帮您登记吧", "我这边给您申请一下吧~", "那我带您操作吧"])
def test_yes_to_the_staff_proposing_to_act_is_the_go_ahead(context):
    assert label("好", context) == "needs_reply"
    assert label("可以", context) == "needs_reply"


@pytest.mark.parametrize(
    "context",
    [
        "那我先给您结束本次会话吧",
        "那我再给您回个电话吧",
        "我们这边为您服务到这里吧",
        "那我先给您把工单关了吧",
        "我给您发个链接您自己看吧",
    ],
)
def test_ok_to_the_staff_ending_the_chat_or_calling_back_is_closing(context):
    assert label("好的", context) == "closing"


@pytest.mark.parametrize("text", ["那就换律师", "好的 问律师", "好 我约专家"])
def test_a_title_after_a_verb_is_no_form_of_address(text):
    assert label(text, "这个问题需要专业人士判断") == "needs_reply"


def test_thanks_to_a_professor_and_nothing_more_are_closing():
    assert label("谢谢李教授", "可以停药了，一周后复查") == "closing"
    assert label("再没有 谢谢", "还有其他问题吗？") == "closing"
    assert label("真没有了", "您再找找看呢") == "needs_reply"  # no answer to a closing check


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("#E-抱拳", "closing"),  # some chat exports write an emoji by name
        ("谢谢#E-微笑#E-微笑", "closing"),
        ("没有了#E-好", "closing"),
        ("#E-流泪", "needs_reply"),  # as [流泪] would be
        ("怎么还没发货#E-微笑", "needs_reply"),
    ],
)
def test_emoji_written_by_name_in_exports_read_as_their_codes(text, expected):
    assert label(text, "已经为您登记好了") == expected


@pytest.mark.parametrize("text", ["服务态度不错", "客服的解答很详细到位", "谢谢解惑"])
def test_praise_of_the_service_and_thanks_for_the_answer_close(text):
    assert label(text, "好的，您放心") == "closing"


@pytest.mark.parametrize("text", ["服务态度太差了", "解答得不清楚"])
def test_complaints_about_the_service_still_need_a_reply(text):
    assert label(text, "好的，您放心") == "needs_reply"


def test_yes_to_give_me_a_moment_is_closing():
    assert label("可以", "麻烦您给小妹一点时间可以吗？") == "closing"


@pytest.mark.parametrize(
    "text",
    [
        "五心了",  # a rating in hearts
        "麻烦小妹你了",
        "言重了",
        "不麻烦",
        "你们的售后服务真是没得说",
        "那我再重新买",
        "实在不行我再想办法吧",
        "那我先下单，随后有问题再找你",
    ],
)
def test_more_closings_of_shop_service_chats(text):
    assert label(text, "感谢您的耐心等待") == "closing"


@pytest.mark.parametrize(("text", "expected"), [("真的很着急", "needs_reply"), ("不着急 慢慢来", "closing")])
def test_saying_one_is_in_a_hurry_urges_the_staff(text, expected):
    assert label(text, "会尽快为您处理的") == expected


@pytest.mark.parametrize(
    "staff",
    [
        "亲亲，我帮您核实一下请您稍等一下，可以吗",  # leave to check: the staff comes back anyway
        "这边帮您核实一下采销，[数字]小时内给您短信回复可以吗",  # how they will come back
        "这边可以帮您操作您先稍等一下哦",  # the staff is on it already
        "优惠劵确定过期了，我们才可以帮您补差价的呢",  # "only then can we": no offer
    ],
)
def test_an_ok_to_the_staff_checking_or_saying_when_they_can_act_is_closing(staff):
    for text in ("好的", "好吧", "谢谢"):
        assert label(text, staff) == "closing", text


@pytest.mark.parametrize(
    "staff", ["我帮您确认一下，您是要取消吗", "稍等，给您换新可以吗", "我帮您查一下，需要帮您催一下吗"]
)
def test_a_decision_put_beside_checking_still_wants_an_answer(staff):
    assert label("好的", staff) == "needs_reply"


@pytest.mark.parametrize(
    ("text", "staff"),
    [
        ("嗯，评价了，[数字]星", "还辛苦您给小妹打个评价呢~"),  # a masked number of stars is a rating
        ("好的那我就直接拒收", "中途我们是无法拦截的，还请您见谅"),  # the customer's own step
        ("好的谢谢我先关了", "这边您耐心等待商家审核就可以了呢"),  # signing off
    ],
)
def test_a_rating_refusing_the_parcel_oneself_or_signing_off_is_closing(text, staff):
    assert label(text, staff) == "closing"


@pytest.mark.parametrize("text", ["直接办理吧", "直接拒收吗", "[数字]", "评价了，[数字]星 但是东西坏了"])
def test_telling_the_staff_to_go_ahead_or_a_bare_masked_number_needs_a_reply(text):
    assert label(text, "您的订单号是多少呢？") == "needs_reply"


@pytest.mark.parametrize(
    ("text", "staff"),
    [
        ("好的", "可以给我商品的网站吗"),  # the customer is to give the staff something
        ("我只是想了解一下", "别忘了对妹纸的服务做出评价哦"),  # only asking
        ("给你评[数字]星", "还辛苦您给小妹打个评价呢"),
        ("已经给您打了五星", "还辛苦您给小妹打个评价呢"),
        ("好的麻烦你", "还请您稍等，正在为您查询~"),  # 麻烦你 with nothing after it thanks
        ("这个好", "[数字]日内多次降价可以多次申请"),  # approving what the staff said
        ("不修改了", "地址这边可以修改的呢"),
        ("好的", "已经帮您升级专员，两小时内回电您，您看可以吗"),  # done already: how they come back
    ],
)
def test_more_closings_from_real_chats(text, staff):
    assert label(text, staff) == "closing"


@pytest.mark.parametrize(
    ("text", "staff"),
    [
        ("好。可以", "帮您升级专员，[数字]小时回电您可以吗"),  # the go-ahead to escalate
        ("好的", "小妹帮您申请价保，完成后短信告知您您看可以吗"),
        ("麻烦你帮我查下", "还请您稍等，正在为您查询~"),
        ("这个好用吗", "[数字]日内多次降价可以多次申请"),
        ("给我评价一下", "还辛苦您给小妹打个评价呢"),
    ],
)
def test_their_look_alikes_need_a_reply(text, staff):
    assert label(text, staff) == "needs_reply"


@pytest.mark.parametrize(
    ("text", "staff"),
    [
        ("没啦", "您好，请问还有其他可以帮您的吗??"),  # a doubled question mark is one question
        ("别的没什么了", "请问还有其他我可以为您效劳的么?"),
        ("满分", "请问还有什么可以帮到您的?"),
        ("给力[数字]星", "请问还有什么可以帮到您的吗"),
        ("已经评价完了", "请问还有什么可以帮到您的?"),
        ("那不聊了，拜拜", "嗯嗯"),
        ("我关闭窗口了，早安", "不客气的"),
        ("只能这样了", "您也多多谅解"),  # resigned acceptance
        ("oki", "取件师傅上门会查看商品外观"),
        ("我从新下吧", "这个订单已经取消了"),  # (从新: a common slip for 重新)
        ("呵呵 谢谢", "感谢您的理解哦"),
    ],
)
def test_closings_from_the_fifth_hundred_of_csds(text, staff):
    assert label(text, staff) == "closing"


@pytest.mark.parametrize(
    ("text", "staff"),
    [
        ("呵呵", "感谢您的理解哦"),  # alone, a sneer
        ("是的", "E卡电子密码没收到吗?"),  # asked the other way round: yes, not received
        ("对的", "亲爱的是这个订单没收到吗"),
        ("不聊了 你们就是骗子", "嗯嗯"),
        ("我问一下", "不客气的"),
    ],
)
def test_their_reply_needing_look_alikes(text, staff):
    assert label(text, staff) == "needs_reply"


def test_a_yes_to_is_it_received_or_solved_is_closing_asked_straight():
    assert label("是的", "E卡电子密码收到了吗?") == "closing"
    assert label("是的", "问题解决了吗？") == "closing"


@pytest.mark.parametrize(
    ("text", "staff"),
    [
        ("辛苦客服妹妹了", "好的呢"),
        ("您稍等", "麻烦您提供下税号哦"),  # the customer goes to get it
        ("都怪我", "给您带来不便，还请您见谅~"),  # blaming oneself
        ("是我自己没看清楚", "给您带来不便，还请您见谅~"),
        ("就这两个问题", "请问还有其他还可以帮到您的吗?"),
        ("不用查了", "稍等哈妹子帮您看下哦"),
        ("帮大忙了", "请问还有其他还可以帮到您的吗?"),
    ],
)
def test_closings_from_the_fourth_hundred_of_csds_test(text, staff):
    assert label(text, staff) == "closing"


@pytest.mark.parametrize(
    ("text", "staff"),
    [
        ("妹妹", "好的呢"),  # calling for attention
        ("都怪你们", "给您带来不便，还请您见谅~"),
        ("是我的问题吗", "给您带来不便，还请您见谅~"),
        ("您稍等 我还有个问题", "麻烦您提供下税号哦"),
    ],
)
def test_and_their_look_alikes(text, staff):
    assert label(text, staff) == "needs_reply"


@pytest.mark.parametrize(
    ("text", "staff"),
    [
        ("已经评价过了，[数字]星", "还辛苦您给小妹打个评价呢~"),
        ("回家拍照", "好的"),  # the customer's own step
        ("谢谢小妹儿", "小妹给您联系站点哈"),
        ("这么晚辛苦了~", "[数字]小时内，亲爱的"),
        ("嗯嗯", "您这边有联系到吗?"),  # got through to them: a yes settles it
        ("我看一下购买日期", "什么时候开始使用的呢"),  # looking it up
    ],
)
def test_closings_from_the_seventh_hundred_of_csds(text, staff):
    assert label(text, staff) == "closing"


@pytest.mark.parametrize(
    ("text", "staff"),
    [
        ("没有", "您这边有联系到吗?"),  # not got through: still the trouble
        ("可以的", "您的订单联系方式可以联系到您吗?"),  # confirms the number the staff will use
        ("你看一下订单", "好的"),  # tells the staff to look
        ("我看一下怎么退", "好的"),
    ],
)
def test_the_seventh_hundreds_look_alikes_need_a_reply(text, staff):
    assert label(text, staff) == "needs_reply"


@pytest.mark.parametrize(
    "staff",
    [
        "您安装好硒鼓了吗",
        "您要开发票吗？",
        "您接受延迟发货吗？",
        "明天上门您在家吗？",
        "这个方案您觉得怎么样？",
        "打个九折您看咋样",
    ],
)
def test_thanks_after_a_yes_or_no_or_will_it_do_question_answers_it(staff):
    # yes-or-no questions are not read as information only: 好的谢谢 may be the yes
    assert label("好的谢谢", staff) == "needs_reply"


@pytest.mark.parametrize(
    "staff", ["请问是这个订单吗？", "就是电子发票修改为增票是吧", "[订单编号]对么", "是否记错了呢"]
)
def test_thanks_after_a_question_that_puts_something_to_confirm_still_answers_it(staff):
    assert label("好的谢谢", staff) == "needs_reply"


@pytest.mark.parametrize(
    ("text", "staff"),
    [
        ("现在就这些吧", "请问还有其他还可以帮到您的吗?"),
        ("早点睡~", "很高兴遇到您这么善解人意的客户"),
        ("我先睡觉啦", "谢谢您"),
        ("你也要注意休息喔", "请问还有其他还可以帮到您的吗?"),
        ("不用了谢谢吆", "如果您不方便签收可以为您操作整单退款"),
        ("京东客服是最好的", "感谢您对京东的支持"),
        ("我还是相信京东的", "我理解您的心情"),
    ],
)
def test_closings_from_the_eighth_hundred_of_csds(text, staff):
    assert label(text, staff) == "closing"


@pytest.mark.parametrize("text", ["我睡了 你们快点发货", "我不相信京东了", "京东客服是最差的"])
def test_the_eighth_hundreds_look_alikes_need_a_reply(text):
    assert label(text, "请问还有其他还可以帮到您的吗?") == "needs_reply"


@pytest.mark.parametrize(
    ("text", "staff"),
    [
        ("谢谢", "很高兴能为您服务"),  # the pleasure of serving is no offer to take up
        ("谢谢!", "这些都是我们的分内之事，我也很荣幸能帮您"),
        ("谢谢解答我没有问题了谢谢", "您还有什么问题想要咨询吗?"),
        ("实在抱歉不好意思!", "亲爱的这边小妹为您再次留言一下哈"),  # the customer apologises
        ("这回懂了", "您直接点击再次购买就好了"),
        ("客气客气", "亲爱的感谢您的理解的呢"),
        ("我自己改了", "亲爱哒，请问还有其他需要咨询的吗?"),
    ],
)
def test_closings_from_the_ninth_hundred_of_csds(text, staff):
    assert label(text, staff) == "closing"


@pytest.mark.parametrize(
    ("text", "staff"),
    [
        ("好的", "可以为您补发一个"),  # an offer: the go-ahead
        ("谢谢", "可以帮您申请退款"),
        ("抱歉 我还有个问题", "好的"),
        ("我没有收到", "好的"),
    ],
)
def test_the_ninth_hundreds_look_alikes_need_a_reply(text, staff):
    assert label(text, staff) == "needs_reply"


@pytest.mark.parametrize(
    ("msgtype", "payload"),
    [
        ("news", {"info": {"item": [{"title": "谢谢"}]}}),
        ("sphfeed", {"sphfeed": {"sph_name": "好的", "feed_desc": "谢谢"}}),
        ("collect", {"collect": {"title": "谢谢"}}),
        ("qydiskfile", {"qydiskfile": {"info": {"filename": "好的"}}}),
        ("calendar", {"calendar": {"title": "拜拜", "place": "好的"}}),
        ("meeting", {"meeting": {"topic": "谢谢"}}),
        ("todo", {"todo": {"title": "好的", "content": "谢谢"}}),
        ("redpacket", {"redpacket": {"wish": "谢谢"}}),
        ("external_redpacket", {"redpacket": {"wish": "谢谢"}}),
        ("voip_doc_share", {"voip_doc_share": {"filename": "好的"}}),
        ("chatrecord", {"chatrecord": {"title": "好的", "item": []}}),
        ("docmsg", {"doc": {"title": "谢谢"}}),
        ("vote", {"votetitle": "好的"}),
        ("mixed", {"mixed": {"item": []}}),
        ("voiptext", {"voiptext": {}}),
        ("meeting_voice_call", {"meeting_voice_call": {}}),
    ],
)
def test_a_message_of_another_kind_needs_a_reply_whatever_words_it_carries(msgtype, payload):
    """A red packet wishing 谢谢 or a 视频号 post titled 好的 is something the customer sent
    to be looked at, not a thank-you: the chat shows its words, the label says what it is."""
    text = render({"msgtype": msgtype, **payload})
    assert text.startswith("[") and text != f"[{msgtype}]"
    (verdict,) = default_classifier().classify([(text, "已经给您处理好了")])
    assert verdict.label == "needs_reply", text


@pytest.mark.parametrize(
    ("text", "context", "label"),
    [
        ("在线等", "请稍等", "closing"),  # the staff asked for a moment: the customer will wait
        ("好的 在线等", "亲亲稍等哦", "closing"),
        ("在线等你回复", "我去问下仓库", "closing"),
        ("在线等", "已经给您退款了", "needs_reply"),  # anywhere else it urges
        ("在线等答复", "好的", "needs_reply"),
        ("在线等", None, "needs_reply"),
        ("在线等，急", "请稍等", "needs_reply"),
    ],
)
def test_waiting_online_is_agreeing_to_wait_only_when_asked_to(text, context, label):
    (verdict,) = default_classifier().classify([(text, context)])
    assert verdict.label == label
