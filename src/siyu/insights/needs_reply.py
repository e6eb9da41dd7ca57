"""Does an inbound customer message need a reply, or is it a closing remark (好的, 谢谢, 👌)?

    from siyu.insights import default_classifier
    verdicts = default_classifier().classify([("好的谢谢", "退款已经提交了"), ("好的", "确定要取消吗？")])
    # [Verdict(label='closing', ...), Verdict(label='needs_reply', ...)]

The shipped implementation (RuleClassifier) is a transparent grammar, and a small model (the
reader, reader.py) for what the grammar cannot judge (step 4):

1. normalise: NFKC (full width → half width), lower case, WeChat codes such as [微笑] [OK]
   [抱拳], emoji and kaomoji (^_^ ⊙o⊙) dropped (question/displeasure ones such as [疑问] ❓ 😡
   remembered), runs of one character shortened (好好好 → 好好, 嗯嗯嗯嗯 → 嗯嗯), punctuation
   turned into spaces (a question mark remembered, except one beside thanks: 谢谢你?, 好的?谢谢),
   two-word closings joined (thank you, hao de, xie xie);
2. a message is a closing remark only if it consists entirely of closing phrases (lexicon.py:
   acknowledgements with their net spellings and particles (好滴 好叭 好的鸭 okk), thanks,
   goodbyes and wishes, praise of the service or the goods (东西挺好的), "it's solved / it
   arrived" (网好了, 退款收到了, 问题已解决, 好像能用了), "nothing else", refusals of an offer and changes
   of mind (不用了, 不退了), the customer's finished steps that need no checking (好评了,
   确认收货了), deferrals or next steps of their own (我再考虑一下, 我等你消息, 我下午去寄,
   我清一下, 有消息告诉我, 我会提醒孩子的, 按时来复诊, 我明天再试一次, 我先看看能不能用 (with 我:
   看看能不能便宜点 asks the staff), 我在找订单号, a patient's 明天我去复查 / 我先观察两天 / 有症状
   我马上去医院) and relief (我还以为出问题了, 这下放心多了, 您这么说我就放心了; not a hope: 明天能到
   就放心了)) and carries no question, request or greeting cue (吗, 怎么,
   多少, 多钱, 还有什么, 帮我, 发我, 但是, 另外, 那我呢, 哈喽, 修好了是吧, 你的意思是, any "A not A"
   such as 合不合适 unless the customer settles it alone: 我回家试试合不合适, 买不买再说, ...);
   @someone that looks like a name (感谢@某某客服 的帮助) is dropped like a form of address.
   Agreeing to what the staff offered (那就后天吧, 按你说的办, 我买两个) is not among the phrases:
   the staff still has something to do. Anything else needs a reply;
3. the staff message it answers decides the bare acknowledgements: after a question the staff
   must act on (确定要取消吗？ 要不要帮您预约？ 您有会员卡吗？) 嗯 / 好的 / 可以 / 好的谢谢 /
   👍 / 没有 / 不取消了 are answers and need a reply; refusals (不用了), deferrals and goodbyes
   stay closing.
   A what-question only for information or a preference (您注重什么功能呢 拍照还是玩游戏呢, 您的订单
   号是多少呢; nothing the staff would do or the customer would take, no "will it do?", no yes or
   no) is answered by a bare 好的 / 可以 / 没有 / a sticker, and left unanswered with thanks (好吧谢谢):
   closing.
   Why the staff asks (方便小妹帮您查询一下) is no offer to decide on: 可以提供一下订单号吗，方便小妹
   帮您查询 asks the customer to act.
   An offer made as a statement (可以给您补发一个的呢, 可以帮您约周三) and "will it do?" (您看行不行,
   好不好, 咋样; 您看可以吧 about what the staff proposes, not about what is done) count as such
   questions: 好的 is the go-ahead. "We cannot say when" (无法确定什么时候到货) and the staff only
   checking where something has got to (帮您查一下快递到哪里了) ask nothing.
   After a closing check (还有其他问题吗？ 还有疑问吗？ 还有可以为您服务的吗？ 您对配置有什么需求呢？) 是的
   needs a reply and 没有了
   does not (after the opening 有什么可以帮您的 only "nothing", 没有了 / 没什么, is closing: not 没事,
   which answers an apology for the wait); after a comprehension check (明白了吗？), a "please
   wait" or a request for the customer to do something (麻烦发一下订单号, 给个评价吧, 拍张照片) an
   acknowledgement is closing, and so it is after the staff says how they will come back and
   asks whether that suits (预计两小时内给您回电，您看可以吗？; not when the question also puts
   an offer, a cancellation or a step of the customer's).
   After the staff asks whether the trouble is over (问题解决了吗？ 网络是否恢复正常了？ 现在能用了吗？
   退款到账了吗？; not when it also offers something: 不行的话给您换新) a yes (是的, 嗯, 可以了,
   没问题了) is closing and a no (没有, 还没, 没有 谢谢) needs a reply;
   没有了 / 没了 still answer the canned 问题是否完全解决了呢 as "nothing more".
   "It's solved" (已经解决了) is closing even after a question (not 搞定吧 / 解决了就行: "deal").
   The last question counts, even with an explanation after it; saying who decides (是否手术要由
   外科医生决定) or what it depends on (要看结果怎么样), an instruction to check whether something
   is there or is so (查看是否有修改按钮, 观察一段时间看流量是否增加; 您看是否需要退款 asks) and
   还是 meaning "still" (还是有可能, 还是尽量) ask nothing. A sentence-final 呢 (是的呢,
   会送到的呢) is a softener, not a question, and neither is a medicine's name (吗丁啉), 只要不要
   ("as long as not"), a doctor's advice to a child (可以给孩子吃点益生菌) or "try it and see how
   it goes" (看看效果如何？). A bare yes (是的, 对, 没错) needs a reply except after a
   comprehension check: in real service chats it confirms an order, a product or a number the
   staff put to the customer, who then goes on.

Non-text messages arrive as text renderings. Defaults: an image, voice, video, file, link,
location, contact card, mini-program or transfer ([图片] [语音] [视频] [文件] [链接] ..., also as
masked exports number them: [链接x], [图片1]) needs a reply; a masked name ([姓名x]) is someone
addressed and is dropped (alone, it answers a staff question or request, or calls someone when
the staff has said nothing, and needs a reply; after a statement it signs off); a sticker
([表情], [emotion], [动画表情]) or emoji alone is an acknowledgement (closing, unless it answers
a decision question); a question or displeasure emoji ([疑问] ❓ 😡) needs a reply; an empty
or punctuation-only message is an acknowledgement, except question marks. A sigh or a
hesitation alone (唉, 额, 那) and dots alone (。。。 ……) need a reply: the customer is dismayed,
speechless or has more to say.

4. what the grammar sends to "needs a reply" only for its content (not for a question, a
   veto cue, media or a length over 48) is read by the reader when the staff message asked
   nothing of the customer (a statement, "please wait", a request to act, a closing or
   comprehension check: not a decision question, the opening line, "is it fixed now?" or no
   staff message at all),
   the text is 40 characters or fewer, is not cut into words by spaces, does not agree to
   an offer or tell the staff what to do (听你的, 那我先买两盒, 你们再仔细看看, 别再发错了) and names
   no trouble, annoyance or loose end in so many words (不太好, 不好用, 很烦, 投诉, 积分还没加上,
   地址改成…, 换个小一号的, 急用, 来晚了), asks nothing with 吧 (不会取消吧) and gives no
   instruction with 就行 (那改过来就行): a
   remark of the customer's own (孩子叫我了 先不聊了, 师傅手艺真好 装得很整齐, 行吧 只能等了) is
   closing when the reader's chance that it needs a reply is under its threshold.
   RuleClassifier(read=False) is the grammar alone.

score is a probability-like confidence that the message needs a reply (fixed per rule, not
calibrated on data; for a message the reader calls closing, its chance); label is
"needs_reply" when score >= 0.5.
"""

from __future__ import annotations

import json
import re
import select
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache, wraps
from typing import BinaryIO, Literal, Protocol, TextIO

from siyu.insights import lexicon as lx
from siyu.insights.reader import chance, reader

Label = Literal["needs_reply", "closing"]


@dataclass(frozen=True, slots=True)
class Verdict:
    label: Label
    score: float  # confidence that the message needs a reply, 0..1


class NeedsReplyClassifier(Protocol):
    def classify(self, batch: Sequence[tuple[str, str | None]]) -> list[Verdict]:
        """One verdict per (customer message, preceding staff message or None)."""
        ...


# ------------------------------------------------------------------------------ normalisation

_CODE = re.compile(r"\[([^\[\]\s]{1,12})\]")
# A masked number in a rating (评价了，[数字]星): the stars, whatever their number.
_MASKED_STARS = re.compile(r"\[数字x?\]\s*(?=星|颗星|心)")
_EXPORT_EMOJI = re.compile(r"#e-[a-z]+\d*(?:\[[^\[\]]{1,8}\])?")  # emoji placeholders of some chat exports
# ... and the same exports' emoji by name (#E-抱拳, #E-好): read as the [抱拳] code would be, the
# longest known name first; an unknown one is taken for a one-character name.
_EMOJI_NAMES = sorted((n for n in lx.EMOJI_CODES | lx.NEGATIVE_CODES if not n.isascii()), key=len)[::-1]
_EXPORT_NAMED = re.compile("#e-(" + "|".join(map(re.escape, _EMOJI_NAMES)) + "|[\u4e00-\u9fff])")
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u2190-\u21ff\u2300-\u23ff\ufe0f\u200d\u20e3\u3030\u303d\u30fd\u30fe]"
)
_PUNCT = re.compile(r"[^\w\s]|_")
# @someone (WeCom's group chats, posts to a brand's account) names who is spoken to, as 亲 or
# 老师 would: 感谢@某某客服 的帮助 thanks. Where the name ends cannot be told from the text
# (WeCom puts a space after it; people type on: 收到@王老师孩子发烧了), so only a name that
# looks like one is dropped: up to three characters, or one ending in a title (客服, 老师,
# 经理, ...), with a space, punctuation or the end after it. Not the @ of an e-mail address.
_NAME_CHAR = r"[^\s@,.!?:;，。！？：；、]"
_TITLE = r"(?:客服|老师|经理|医生|大夫|师傅|店长|老板|小姐姐|小哥|助理|顾问|官方|官微|小编)"
_MENTION = re.compile(
    rf"(?<![a-z0-9])@(?![a-z0-9]+\.[a-z])(?:{_NAME_CHAR}{{1,3}}|{_NAME_CHAR}{{0,10}}?{_TITLE})"
    r"(?:\s|$|(?=[,.!?:;，。！？：；、]))"
)
# Kaomoji (^_^ ⊙o⊙ o(∩_∩)o ヾ(≧▽≦*)o): the letters between their symbols are not words.
_KAOMOJI = re.compile(r"[oヾノ]?(?:[^\w\s]|_)+[oωд▽∀εヾノ]?(?:[^\w\s]|_)+[oヾノ]?")
# Without these letters a kaomoji is symbols only, which the punctuation pass blanks anyway.
_KAOMOJI_LETTERS = re.compile("[oωдεヾノ]")
_NEGATIVE_CHARS = re.compile(
    "[" + "".join(map(re.escape, sorted(lx.NEGATIVE_EMOJI | lx.NEGATIVE_KAOMOJI))) + "]"
)
_REPEAT = re.compile(r"(.)\1{2,}")
# A question mark after thanks or between an acknowledgement and thanks (谢谢你?, 好的?谢谢, 好的?
# 麻烦了) asks nothing: exports that lost an emoji write one there. (明天到?谢谢 and 谢谢?? still ask.)
_THANKS_MARK = re.compile(
    r"(?<=谢)[?](?![?])|(?<=谢[你您了啦])[?](?![?])|(?<=[好的嗯滴哒])[?](?=\s*(?:谢|麻烦(?:了|你了|您了)?$))"
)
# Two-word English and pinyin closings, made one token (no phrase spans a space).
_JOIN = re.compile(r"\b(?:thank you|thank u|got it|hao de|xie xie)\b|(?<![a-z])o k(?![a-z])")


@dataclass(frozen=True, slots=True)
class Normalized:
    text: str  # what the grammar sees
    media: bool = False  # an image, voice, file, link, ... rendering
    negative: bool = False  # a question or displeasure emoji / code
    question: bool = False  # a question mark
    named: bool = False  # a masked name ([姓名x]), dropped from the text


# Masked exports number their placeholders ([姓名x], [链接1], [name2]): the kind is what counts.
_MASK_SUFFIX = re.compile(r"(?<=[^\dx])(?:x|\d{1,2})$")


def _code_name(name: str) -> str:
    return _MASK_SUFFIX.sub("", name)


def _drop_known_code(m: re.Match[str]) -> str:
    """Emoji, sticker, media and negative codes go (the last two are flagged), and so does a
    masked name ([姓名x]: someone addressed or signing off); any other [xxx] (a placeholder
    such as [订单号], a bracketed word) stays as content."""
    name = _code_name(m.group(1))
    if (
        name in lx.EMOJI_CODES
        or name in lx.STICKER_CODES
        or name in lx.MEDIA_CODES
        or name in lx.NEGATIVE_CODES
        or name in lx.NAME_CODES
    ):
        return " "
    return m.group(0)


_TRADITIONAL = re.compile(lx.TRADITIONAL_CHARS)


_CANTONESE_HINT = re.compile(lx.CANTONESE_HINT)
_CANTONESE = re.compile("|".join(f"({pattern})" for pattern, _ in lx.CANTONESE))
_MANDARIN = [None] + [mandarin for _, mandarin in lx.CANTONESE]  # by group number


def _simplified(text: str) -> str:
    """Cantonese words and traditional characters read as the simplified Mandarin the lexicon
    is written in. (A search first: most text has neither, and finding so costs a fifth of
    translating.)"""
    if _CANTONESE_HINT.search(text):
        text = _CANTONESE.sub(lambda m: _MANDARIN[m.lastindex], text)
    return text.translate(lx.TRADITIONAL) if _TRADITIONAL.search(text) else text


def _remembered_when_short(longest: int = 256, size: int = 20_000):
    """lru_cache for texts of up to `longest` characters (None too). Customers repeat themselves
    (好的 谢谢 收到), and a worker runs for weeks: its cache must not come to hold 20,000 pasted
    essays."""

    def remembered(fn):
        cached = lru_cache(maxsize=size)(fn)

        @wraps(fn)
        def call(text):
            return cached(text) if text is None or len(text) <= longest else fn(text)

        call.cache_clear = cached.cache_clear
        return call

    return remembered


@_remembered_when_short()
def normalize(text: str) -> Normalized:
    # (Normalized is immutable, so one remembered can be handed out again.)
    t = text.lower() if text.isascii() else _simplified(unicodedata.normalize("NFKC", text).lower())
    media = negative = named = False
    if "[" in t or "#e-" in t:
        t = _MASKED_STARS.sub("5", t)
        t = _EXPORT_EMOJI.sub(" ", _EXPORT_NAMED.sub(r" [\1] ", t))
        for name in map(_code_name, _CODE.findall(t)):
            if name in lx.MEDIA_CODES:
                media = True
            elif name in lx.NEGATIVE_CODES:
                negative = True
            elif name in lx.NAME_CODES:
                named = True
        t = _CODE.sub(_drop_known_code, t)
    if not t.isascii():
        if _NEGATIVE_CHARS.search(t):
            negative = True
        t = _EMOJI.sub(" ", t)
    if "@" in t and (unmentioned := _MENTION.sub("", t)).strip():
        t = unmentioned
    question = "?" in t and "?" in _THANKS_MARK.sub("", t)
    if _KAOMOJI_LETTERS.search(t):
        t = _KAOMOJI.sub(" ", t)
    t = _PUNCT.sub(" ", t)
    t = _REPEAT.sub(r"\1\1", t)
    t = " ".join(t.split())  # (as _SPACE.sub(" ", t).strip(): str.split's whitespace is re's \s)
    if "thank" in t or "got" in t or "hao" in t or "xie" in t or "o k" in t:
        t = _JOIN.sub(lambda m: m.group(0).replace(" ", ""), t)
    return Normalized(t, media, negative, question, named)


# ------------------------------------------------------------------------------ grammar


class _Grammar:
    """Can the text be cut, entirely, into phrases of these classes (and spaces)?

    A dynamic programme over positions: from each reachable position, every span that one
    phrase matches exactly makes its end reachable. Linear in the text length times the
    longest phrase, where one regex `(?:A|B|...)+` backtracks exponentially on long texts made
    of ambiguous phrases (好的好的...x). Customers repeat themselves (好的, 谢谢, 好的谢谢 are
    most of what they write), so each segment's answer is remembered (SEGMENT_CACHE)."""

    MAX_PHRASE = 24
    SEGMENT_CACHE = 20_000
    made: list[_Grammar] = []  # noqa: RUF012 - every grammar, for clear_caches()

    def __init__(self, *classes: str, nothing: bool = False) -> None:
        self.phrase = re.compile("|".join(f"(?:{c})" for c in classes))
        self.nothing = re.compile(lx.NOTHING) if nothing else None
        self.nothing_next = re.compile(lx.NOTHING_NEXT)
        self.segment = lru_cache(maxsize=self.SEGMENT_CACHE)(self._segment)
        _Grammar.made.append(self)

    def _ends(
        self,
        pattern: re.Pattern[str],
        s: str,
        i: int,
        reach: bytearray,
        check_next: bool,
        starts: bool = False,
    ) -> None:
        if not starts and not pattern.match(s, i):  # no phrase starts here
            return
        for j in range(i + 1, min(len(s), i + self.MAX_PHRASE) + 1):
            if (
                not reach[j]
                and pattern.fullmatch(s, i, j)
                and (not check_next or self.nothing_next.match(s, j))
            ):
                reach[j] = 1

    def _segment(self, s: str) -> bool:
        # The common case is one phrase (好的, 谢谢, 没有了). A pattern that matches from the start
        # without reaching the end may still match all of it another way (fullmatch); one that
        # matches nothing from the start matches none of it, nor starts a phrase at 0.
        n = len(s)
        phrase = self.phrase.match(s)
        if phrase and (phrase.end() == n or self.phrase.fullmatch(s)):
            return True
        nothing = self.nothing.match(s) if self.nothing is not None else None
        if nothing and (nothing.end() == n or self.nothing.fullmatch(s)):
            return True
        if not phrase and not nothing:
            return False
        reach = bytearray(n + 1)
        reach[0] = 1
        if phrase:  # (at 0 the matches above say which patterns start a phrase)
            self._ends(self.phrase, s, 0, reach, False, starts=True)
        if nothing:
            self._ends(self.nothing, s, 0, reach, True, starts=True)
        for i in range(1, n):
            if reach[n]:
                return True
            if reach[i]:
                self._ends(self.phrase, s, i, reach, False)
                if self.nothing is not None:
                    self._ends(self.nothing, s, i, reach, True)
        return bool(reach[n])

    def fullmatch(self, s: str) -> bool:
        # No phrase spans a space (normalize() joins "thank you"), so segments parse alone.
        return all(self.segment(seg) for seg in s.split(" ") if seg)


# Every closing phrase; the weak subset is what a decision question turns into an answer.
_ALL = _Grammar(
    lx.REFUSAL,
    lx.REFUSAL_CHANGE,
    lx.DEFER,
    lx.NEVER_MIND,
    lx.BYE,
    lx.THANKS,
    lx.DONE,
    lx.CUSTOMER_DONE,
    lx.ACK,
    lx.PRAISE,
    lx.FILLER,
    nothing=True,
)
_WEAK_PHRASES = (lx.THANKS, lx.DONE, lx.ACK, lx.PRAISE, lx.REFUSAL_CHANGE, lx.NEVER_MIND, lx.FILLER)
_WEAK = _Grammar(*_WEAK_PHRASES)
_WEAK_OR_NOTHING = _Grammar(*_WEAK_PHRASES, nothing=True)
# What answers a question for information (好的, 可以, 没有) rather than leaving it (好吧谢谢).
_BARE_OR_NOTHING = _Grammar(lx.ACK, lx.REFUSAL_CHANGE, lx.FILLER, nothing=True)
_CALL = _Grammar(lx.ADDRESS, r"呢|呀|啊|哈")  # 亲 / 王老师 alone call for attention
_CALL_PARTICLES = "呢呀啊哈 "
_NOTHING_BARE = re.compile(lx.NOTHING_BARE)
_AFFIRM = re.compile(r"(?:对对|是的?|对的?|有的?|嗯对)(?: ?(?:对对|是的?|对的?|有的?|没错))*")
# A bare yes (是的, 对, 没错) confirms what the staff put to the customer (an order, a product,
# "是这个吧"), who then goes on: in real service chats it is not how a customer signs off.
_YES = r"(?:对对|是的|是滴|是|对的|对滴|对|没错|嗯对)"
_CONFIRM = re.compile(rf"(?:(?:嗯+|恩+|哦+) ?)?{_YES}(?: ?{_YES})*")
_AFTER_NOTHING_BARE = _Grammar(lx.PARTICLE, lx.THANKS, lx.BYE, lx.DEFER, lx.NEVER_MIND, r"没问题了?")
_AFTER_AFFIRM = _Grammar(lx.FILLER)


def _head_then(head: re.Pattern[str], rest: _Grammar, s: str) -> bool:
    m = head.match(s)
    return m is not None and rest.fullmatch(s[m.end() :].strip())


_VETO = re.compile(lx.VETO)
# "A not A" that the customer will find out themselves (我回家试试穿着合不合适, 我问问老公同不同意)
# or leaves open (买不买再说吧) asks the staff nothing: only the A-not-A itself is taken out
# before the veto cues are looked for (帮我看看合不合适, 我想问下包不包邮 and 我就是问问合不合适
# still ask).
_SELF_AB = re.compile(
    r"(?<![帮给替为])我(?!想)(?:(?![你您])[\u4e00-\u9fff]){0,4}?"
    r"(?:看看|看下|试试|试下|观察|问问(?=老公|老婆|家里|家人|孩子|他|她|朋友|同事|领导|爸|妈))"
    r"(?:(?![你您])[\u4e00-\u9fff]){0,6}?(?P<ab>([\u4e00-\u9fff])不\2)|"
    r"(?P<ab2>([\u4e00-\u9fff])不\4)(?=都?(?:再说|行|可以|无所谓))"
)


def _without_self_ab(s: str) -> str:
    return _SELF_AB.sub(lambda m: s[m.start() : m.start("ab" if m.group("ab") else "ab2")] + " ", s)


# "It's solved" (已经解决了) ends the matter even after a staff question.
_SOLVED = re.compile(r"(?:解决|搞定|没问题)了(?!\s*(?:就|吧))")
# A sigh, a hesitation or a lone 那 ("then ...") said alone: the customer is dismayed or has
# more to say. (With a closing phrase, 唉，好吧, it is only a particle.)
# (呵呵 alone is read as a sneer in service chats; beside thanks it laughs: 呵呵 谢谢)
_HESITATION = re.compile(r"(?:那|额|呃|唉|哎|哎呀|哎哟|嗐|啊|呀|呵呵| )+")
# 在线等 ("waiting online"): the customer agrees to wait when the staff asked for a moment to
# check (请稍等 / 我帮您查一下); anywhere else it urges (问题还没解决，在线等).
_ONLINE_WAIT = re.compile(
    r"(?:(?:好的?|嗯嗯?|ok|行)[,， ]*)?(?:我|我们)?在线等(?:着)?(?:你|您)?(?:的)?"
    r"(?:消息|回复|答复|结果)?(?:哈|呢|哦|啊)?"
)
_DOTS = re.compile(r"[。.．·*＊]{2,}|[…⋯]")
_MAX_CLOSING_LEN = 48

# staff messages
_SENTENCE = re.compile(r"(?<=[。!.;\n?])")
# A sentence-final 呢 is a softener in service talk (是的呢, 会送到的呢, 帮您反馈了呢), not a
# question: only 您看呢 and a question word before it (您想要什么尺码呢, 需要几件呢) ask.
# 是否 asks, except in an instruction to check something (查看是否有“修改”按钮; 您看是否需要 asks); 还是 asks
# between choices (红色还是蓝色), not as "still" (还是建议您取下来, 我们还是原价的哦). The 吗
# of 吗丁啉 (a stomach medicine) and 吗啡 does not ask, nor 要不要 in 只要不要 ("as long as not").
_QUESTION = re.compile(
    rf"[?]|吗(?![丁叮]啉|啡)|{lx.QUESTION_ME}|"
    r"[您你]看呢|嘛[\s~]*$|(?:(?<![查看确核检])|(?<=[您你]看))是否|(?<!只)要不要|需不需要|(?:^|[,，\s])(?:需要|要)我(?:帮|给|为)(?:您|你)|"
    r"还是(?!建议|按|要|会|可以|得|需要|有(?:可能|希望|机会|一定)|挺|很|蛮|尽量)[^,，。]{0,12}?(?<![的哦哈啦])(?:呢|$)|哪个|哪一|"
    r"哪种|哪天|哪里|什么时候|什么时间|多少|选哪|考虑哪|请问|是不是|有没有|能不能|可不可以|[是对]吧|"
    r"行不行|行不[\s~]*$|好不好|咋样|怎么样|"
    r"(?:什么|怎么|为什么|为啥|几|谁|啥|咋|哪|如何)[^,，。]{0,12}呢[\s~]*$"
)
# "We cannot say when / how much" (不能确定具体什么时间有货) tells; it does not ask, and neither
# does saying who decides or what it depends on. (Only the question word goes: 没法确定什么时候到
# 您要不要先退款 still asks.)
_UNSURE = re.compile(
    r"(?:不能|无法|没法|没办法|不好|不太|说不准|不)(?:确定|保证|清楚|预估|估计)(?:具体)?(?:的)?"
    r"(?:什么时候|什么时间|多久|几天|哪天|多少)|"
    # "whether ... is for the specialist to decide", "it depends on how ... turns out"
    r"是否[^,，。？?]{0,12}(?:要由|需要由|得由|由)[^,，。？?]{0,10}(?:确定|决定|判断|评估)|"
    r"(?<![不要])(?:要|得|需要)看(?![看您你])[^,，。？?]{0,12}(?:怎么样|如何)|"
    # "try it and see how it works" is advice, even with a question mark (用几天看看效果如何？);
    # 您看看效果怎么样？ asks for approval
    r"(?<![您你])(?:用|吃|试|涂|坚持|观察|治疗|服用)[^。？?]{0,8}看看(?:效果|情况)(?:如何|怎么样)[?]?|"
    # an instruction to check for oneself whether something is so (查看一下有没有临近您的售后点,
    # 观察一段时间，看消耗流量是否继续增加, 您看一下是否有修改按钮, 请核实下地址是否正确); 您看有没有…,
    # 您看是否…, 确认一下是否需要退款 ask
    r"(?:查看|检查|观察|确认|核实|核对|看(?=一下|下)|(?<![您你])看)(?:一下|下)?[^,，。？?]{0,10}?(?:是否|有没有)"
    r"(?!需要|要|帮|给|为)|"
    # the staff will check where the parcel has got to, and says nothing else (帮您查一下快递到哪
    # 里了，稍等): with anything more (您签收了没, 需要我…, 是这台吧) the staff message is read as it is
    r"^(?:好的|嗯)?[,，]?(?:我|这边)?(?:帮您|给您|马上)?(?:查|看)(?:一下|下)?[^,，。？?]{0,8}?(?:到|在)哪(?:里|儿)了"
    r"(?:[,，。 ]*(?:请|您)?稍等(?:一下|下)?)?[。.~～!！ ]*$"
)
_CLOSING_CHECK = re.compile(lx.CLOSING_CHECK)
_RESOLVED_CHECK = re.compile(lx.RESOLVED_CHECK)
# How or when it will be solved is not whether it is (那您希望怎么解决呢).
_ASKS_HOW = re.compile(r"怎么|怎样|如何|什么|哪|几|多久|多少|何时|为什么|为啥")
# "No" to "is it solved?": the trouble is still there. Not 没了 / 没有了 (nothing more, as
# customers answer the canned 问题是否完全解决了呢), 没事, 没问题 or 没关系. (A no with thanks, 没有
# 谢谢, is still a no: the refund or the fault is still outstanding.)
_UNSOLVED = re.compile(
    r"(?:暂时|目前|现在|还|也)?(?:没有|没(?!有)|木有)"
    r"(?!\s*(?:了|啦|咯|喽|错|(?:什么|啥|任何|别的|其他|其它)?(?:问题|事)|关系|毛病|没事))"
)
# "Not yet ...?" (E卡电子密码没收到吗?, 还没到账吗): asked the other way round, a yes is the trouble.
_NEGATED = re.compile(
    r"(?<!有)(?<!是)(?:没|没有|未|还没|还没有|不)(?:能)?(?:收到|到|解决|恢复|好|到账|修好|能用|用了|正常)"
)
# "If it still doesn't work, we can send someone": the offer is what the customer answers.
_IF_NOT = re.compile(r"不行的话|还不行|没好的话|需要的话|如果没有")
# ... or a decision put after it in the same question (修好了吗，需要给您申请补偿吗？).
_DECISION_AFTER = re.compile(r"需要|要不要|帮您|给您|为您|要我")
# Why the staff asks (方便小妹帮您查询一下): the purpose of a request, not an offer to decide on
# (可以方便提供一下订单号吗，方便小妹帮您查询一下哦 asks for the number; 好的 is closing).
_PURPOSE = re.compile(
    r"(?:方便|以便|便于|好)(?:小妹|妹子|小二|我|我们|这边|客服|后台)?(?:帮|给|为)(?:您|你|亲)(?:查|核|处理|跟进|登记|确认|办理|申请)"
    r"[^,，。!！?？]*"
)
# What the staff would do for the customer, on their say-so (帮您升级专员, 为您申请退款): asked with
# a call back, 好的 is still the go-ahead. Checking or passing word on (帮您核实, 为您反馈) is not.
_WILL_ACT = re.compile(
    r"(?<!已经)(?<!已)(?:帮|给|为)(?:您|你)(?:升级|申请|提交|转接|转到|退|换|补|取消|办理|安排|催|加急|改|修改|登记)"
)
_OPENING = re.compile(lx.OPENING)
_WELCOME = re.compile(lx.WELCOME)
_COMPREHENSION = re.compile(lx.COMPREHENSION)
_WAIT = re.compile(lx.WAIT)
_CALLBACK = re.compile(lx.CALLBACK)
_CONSENT = re.compile(lx.CONSENT)
_CALLBACK_NOT = re.compile(lx.CALLBACK_NOT)
_ACTION = re.compile(lx.ACTION)
_DECISION = re.compile(lx.DECISION)
_OFFER = re.compile(lx.OFFER)

ContextKind = Literal[
    "none",
    "statement",
    "closing_check",
    "resolved_check",
    "opening",
    "comprehension",
    "wait",
    "action",
    "decision",
    "info",
]


# An address in a staff message (its ?query is no question) and a card's title as the archive
# renders a shared card, [链接] 空调清洗怎么预约？ (the article's question, not one put to the customer)
# (ASCII only: Chinese has no spaces, and the question after an address, 点这里https://a.cn/x看下
# 能打开吗？, is the staff's; a domain ends in letters, so a price, 12.5/个，需要吗？, is none)
_ADDRESS = re.compile(r"(?:https?://|www\.)[!-~]+|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}/[!-~]*", re.ASCII)
_CARD_TITLE = re.compile(
    r"^(\[(?:链接|小程序|图文消息|视频号|文件|文档|微盘文件|投票|日程|会议|待办|填表|聊天记录)\]).*", re.S
)


def _past_the_address(found: re.Match) -> str:
    """An address left out, the punctuation after it kept (…/abc？ asks: NFKC made the ？ ASCII)."""
    address = found.group()
    end = address.rstrip("?!.,;:)")
    return " " + address[len(end) :]


def _staff_text(context: str | None) -> str:
    """The staff message as the context rules read it: NFKC, lower case, simplified, without
    addresses or a shared card's title."""
    text = _simplified(unicodedata.normalize("NFKC", context or "").lower())
    if "/" in text or "www." in text:
        text = _ADDRESS.sub(_past_the_address, text)
    return _CARD_TITLE.sub(r"\1", text) if text.startswith("[") else text


def _asks_to_wait(context: str | None) -> bool:
    """The staff asked for a moment, or leave to check (请稍等, 我去问下仓库), asking nothing else."""
    kind = context_kind(context)
    if kind == "wait":
        return True
    return kind == "statement" and bool(_WAIT.search(_staff_text(context)))


@_remembered_when_short(longest=1000, size=8192)  # (staff messages: 12 MB for 20 of 300,000 before)
def context_kind(context: str | None) -> ContextKind:
    """What the customer is answering: the last question in the staff message decides."""
    if not context or not context.strip():
        return "none"
    c = _staff_text(context)
    # (a question mark alone is the end of the question before it: 可以帮您的吗??)
    questions = [
        s for s in _SENTENCE.split(_UNSURE.sub(" ", c)) if _QUESTION.search(s) and s.strip("?!.;。 \n")
    ]
    if not questions:
        if _WELCOME.search(c):
            return "opening"
        # (an offer with "please wait" after it, 可以帮您操作 您先稍等一下: the staff is on it)
        offer = _OFFER.search(c)
        offers = (offer and not _WAIT.search(c, offer.end())) or _asks_will_it_do(c) or _PROPOSES.search(c)
        return "decision" if offers else "statement"
    q = questions[-1]
    if _CLOSING_CHECK.search(q):
        return "closing_check"
    resolved = _RESOLVED_CHECK.search(q)
    if (
        resolved
        and not _NEGATED.search(q)  # 没收到吗: a yes says the trouble is there
        and not _ASKS_HOW.search(q)
        and not _OFFER.search(c)
        and not _IF_NOT.search(c)
        and not _DECISION_AFTER.search(q, resolved.end())
    ):
        return "resolved_check"
    if _OPENING.search(q):
        return "opening"
    if _COMPREHENSION.search(q) and not _NEGATED.search(q):
        return "comprehension"
    if (
        _CALLBACK.search(q)
        and _CONSENT.search(q)
        and not _CALLBACK_NOT.search(q)
        and not _OFFER.search(c)  # 可以帮您改，改好短信通知您，可以吗: the go-ahead
        and not _ACTION.search(c)  # 请您提供一下联系方式，我们回电: the customer has a step
        and not _WILL_ACT.search(q)  # 帮您升级专员，两小时回电您可以吗: the go-ahead to escalate
    ):
        return "wait"
    asked = _PURPOSE.sub(" ", q)
    decision = _DECISION.search(asked)
    # Asking leave to check or for a moment (我帮您核实一下 请您稍等一下，可以吗) puts nothing to
    # decide on; a question beside it still counts (我帮您确认一下，您是要取消吗).
    if decision and _CONSENT.search(asked) and not _DECISION.search(_WAIT.sub(" ", asked)):
        decision = None
    if _WAIT.search(q) and not decision:
        return "wait"
    if _ACTION.search(q) and not decision:
        return "action"
    if (
        _WH.search(asked)
        and not _ACTS.search(asked)
        and not _YES_NO.search(asked)
        and not _CONSENT.search(asked)
        and not _OFFER.search(c)
    ):
        return "info"
    return "decision"


# A question only for information or a preference (您注重手机的什么功能呢 拍照还是玩游戏呢, 您的订单号
# 是多少呢): a bare 好的 or 没有 still answers it, but thanks with it (好吧谢谢) leaves without
# answering, and nothing waits on the staff. Not a question that puts something the staff would
# do or the customer would take (需要帮您取消吗, 给您换新还是退款呢, 您要红色还是蓝色, 您能接受吗),
# asks "will it do?" (您看怎么样, 咋样, 如何) or asks yes or no (是这个订单吗, 您在家吗): 好的谢谢
# answers those.
_WH = re.compile(r"什么|哪|还是|几|多少|怎么(?!样)|为什么|为啥|啥")
_ACTS = re.compile(
    r"需要|要|确定|确认|是否|同意|接受|愿意|方便|帮|给|为(?:您|你)|换|退|补|赔|取消|申请|安排|预约|下单|购买|办理"
)
_YES_NO = re.compile(rf"吗|{lx.QUESTION_ME}|是不是|有没有|能不能|可不可以|行不行|好不好|[是对行好]吧")


# "Will it do?" asked with 吧 about what the staff proposes (赔付您三十元的红包，您看可以吧): 好的 is
# the go-ahead. Not about what is done already (已经给您处理好了，您看可以吧), a wrap-up (那就先这样，
# 可以吧) or the customer's own step (您明天再打这个电话咨询，可以吧).
_WILL_IT_DO = re.compile(r"(?:可以|行)吧(?=\s*(?:先生|女士|亲|亲亲)?[\s~。.!！]*$)")
_PROPOSED = re.compile(r"(?:给|帮|为)(?:您|你)|补偿|赔付|赔偿|补发")
_ALREADY = re.compile(r"已经|已(?:为|给|帮|退|补|发|处理)")


# The staff proposing to act, with 吧 at the end (那我带您提交吧, 我帮您申请吧): 好 is the go-ahead,
# and the staff reports back once it is done. A wrap-up or a call back is no such proposal.
_PROPOSES = re.compile(
    r"(?:我|我们|这边|小妹|妹子)(?:这边|先|再|现在|马上|就)?(?:带|帮|给|为)(?:您|你|亲)"
    # not ending the chat, calling back or leaving it to the customer (那我先给您结束本次会话吧,
    # 那我再给您回个电话吧, 我给您发个链接您自己看吧)
    r"(?![^,，。!！?？~]*(?:结束|关闭|关掉|关了|服务到|回电|电话|说过|讲过|您自己|你自己))[^,，。!！?？~]{1,12}吧"
    r"(?=[\s~。.!！]*$)"
)


def _asks_will_it_do(c: str) -> bool:
    return bool(_WILL_IT_DO.search(c) and _PROPOSED.search(c) and not _ALREADY.search(c))


def _asks_for_something(context: str | None) -> bool:
    """Did the staff ask a question or ask the customer to do something (or say nothing)?"""
    if context_kind(context) in ("none", "decision", "info", "opening", "action"):
        return True
    return bool(_ACTION.search(_staff_text(context)))


# ------------------------------------------------------------------------------ classifier

NEEDS_MEDIA = Verdict("needs_reply", 0.9)
NEEDS_QUESTION = Verdict("needs_reply", 0.95)
NEEDS_NEGATIVE = Verdict("needs_reply", 0.8)
NEEDS_CONTENT = Verdict("needs_reply", 0.9)  # not made of closing phrases only
NEEDS_ANSWER = Verdict("needs_reply", 0.7)  # an acknowledgement answering a staff question
NEEDS_ANSWER_STICKER = Verdict("needs_reply", 0.6)
NEEDS_HESITATION = Verdict("needs_reply", 0.6)
CLOSING = Verdict("closing", 0.1)
CLOSING_WEAK = Verdict("closing", 0.2)  # a bare acknowledgement with no staff message to go by
CLOSING_STICKER = Verdict("closing", 0.3)


def clear_caches() -> None:
    """Forget remembered staff messages, texts and segments (to measure the classifier cold). The
    reader's weights, loaded once, stay."""
    context_kind.cache_clear()
    normalize.cache_clear()
    _screened.cache_clear()
    for grammar in _Grammar.made:
        grammar.segment.cache_clear()


def classify_one(text: str, context: str | None = None, read: bool = True) -> Verdict:
    judged = _by_grammar(text, context)
    if isinstance(judged, Verdict):
        return judged
    return _read(judged, context) if read else NEEDS_CONTENT


# Kinds of staff message after which the reader is not asked: after a decision question or the
# opening line the staff must act on whatever the customer says (the spec's 好的 to 确定要取消吗？),
# and a customer who speaks first opens a conversation; after "is it fixed now?" a yes that goes
# on (恢复了 就是路由器要换新的) is most often about something else to do. (After a closing or
# comprehension check, "please wait", a request to act or a statement, it is.)
_UNREAD_KINDS = ("decision", "info", "opening", "none", "resolved_check")
_NOT_READ = re.compile(lx.NOT_READ)
# Past 40 characters a message nearly always carries something for the staff, and the reader has
# few such rows to learn from; up to 40 it caught more closings of the development sets at the
# same needs-reply recall (24 caught fewer, 60 no more).
_READ_MAX = 40


def reader_input(text: str, context: str | None = None) -> tuple[str, bool] | None:
    """The text as the reader would see it (normalised) and whether the reader is asked about
    it (content after a staff message that asks nothing of the customer); None where the
    grammar decides alone."""
    s = _by_grammar(text, context)
    if not isinstance(s, str):
        return None
    return s, _readable_text(s) and context_kind(context) not in _UNREAD_KINDS


def reader_would_read(text: str, context: str | None = None) -> bool:
    """Is this a message the grammar leaves to the reader, and the reader is asked about?"""
    found = reader_input(text, context)
    return found is not None and found[1]


def grammar_leaves_content(text: str, context: str | None = None) -> bool:
    """Would the grammar call this a reply-needing message only for its content?"""
    return reader_input(text, context) is not None


def _readable_text(s: str) -> bool:
    return len(s) <= _READ_MAX and not _NOT_READ.search(s) and not _word_segmented(s)


def _read(s: str, context: str | None) -> Verdict:
    if not _readable_text(s):
        return NEEDS_CONTENT
    model = reader()
    z = model.text_logit(s)
    # Most content needs a reply whatever the staff said: skip reading the staff message then.
    if z + model.lowest_kind >= model.threshold_logit:
        return NEEDS_CONTENT
    kind = context_kind(context)
    if kind in _UNREAD_KINDS:
        return NEEDS_CONTENT
    logit = z + model.kind_weight(kind)
    return Verdict("closing", round(chance(logit), 3)) if logit < model.threshold_logit else NEEDS_CONTENT


def _word_segmented(s: str) -> bool:
    """Text cut into words by spaces (我 刚 买 还 没到 呢), as some exports and corpora store it:
    the reader learnt from messages as customers type them, so it does not read these."""
    words = s.split(" ")
    return len(words) >= 4 and sum(len(w) <= 2 for w in words) > 0.6 * len(words)


@_remembered_when_short()
def _screened(text: str) -> tuple[Normalized, Verdict | None]:
    """The normalised text, and the verdict where the text alone decides before any rule that
    reads the staff message (media, a question, a veto cue, a length over 48)."""
    n = normalize(text)
    if n.media:
        return n, NEEDS_MEDIA
    if n.question:
        return n, NEEDS_QUESTION
    if n.negative:
        return n, NEEDS_NEGATIVE
    s = n.text
    if s and (len(s) > _MAX_CLOSING_LEN or _VETO.search(_without_self_ab(s) if "不" in s else s)):
        return n, NEEDS_QUESTION if len(s) <= _MAX_CLOSING_LEN else NEEDS_CONTENT
    return n, None


def _by_grammar(text: str, context: str | None) -> Verdict | str:
    """The rules' verdict, or the normalised text where only its content could tell."""
    n, screened = _screened(text or "")
    if screened is not None:
        return screened
    s = n.text
    if not s and n.named:  # only a name: an answer (请提供收货人姓名), a call, or a sign-off
        return NEEDS_CONTENT if _asks_for_something(context) else CLOSING_STICKER
    if not s:  # a sticker, emoji or punctuation only
        if _DOTS.search(text):  # speechless (。。。 …… [捂脸])
            return NEEDS_HESITATION
        answers = context_kind(context) in ("decision", "info", "opening")
        return NEEDS_ANSWER_STICKER if answers else CLOSING_STICKER
    # The staff message is read only when the verdict depends on it (most content does not).
    if _UNSOLVED.match(s) and context_kind(context) == "resolved_check":
        return NEEDS_ANSWER
    if (
        _NOTHING_BARE.match(s)
        and context_kind(context) in ("closing_check", "opening", "resolved_check")
        and _head_then(_NOTHING_BARE, _AFTER_NOTHING_BARE, s)
    ):
        return CLOSING
    if _CALL.fullmatch(s) and s.strip(_CALL_PARTICLES):
        return NEEDS_CONTENT
    if _ONLINE_WAIT.fullmatch(s):
        return CLOSING if _asks_to_wait(context) else NEEDS_CONTENT
    if not _ALL.fullmatch(s):
        return s
    if _HESITATION.fullmatch(s):
        return NEEDS_HESITATION
    kind = context_kind(context)
    if kind == "decision" and _WEAK_OR_NOTHING.fullmatch(s) and not _SOLVED.search(s):
        return NEEDS_ANSWER
    # "Nothing" (没什么, 没别的事) answers the opening line; 没事 answers an apology for the wait.
    if kind == "opening" and _WEAK.fullmatch(s) and not _SOLVED.search(s):
        return NEEDS_ANSWER
    if kind == "info" and _BARE_OR_NOTHING.fullmatch(s) and not _SOLVED.search(s):
        return NEEDS_ANSWER
    if kind in ("decision", "info", "opening"):
        return CLOSING
    if kind == "closing_check" and _head_then(_AFFIRM, _AFTER_AFFIRM, s):
        return NEEDS_ANSWER
    if kind not in ("comprehension", "resolved_check") and _head_then(_CONFIRM, _AFTER_AFFIRM, s):
        return NEEDS_ANSWER
    if kind == "none" and _WEAK.fullmatch(s):
        return CLOSING_WEAK
    return CLOSING


class RuleClassifier:
    """The normalisation + closing grammar + context rules described in the module docstring,
    and the reader for content the grammar cannot judge (read=False: the grammar alone, where a
    message it cannot judge always needs a reply)."""

    def __init__(self, read: bool = True) -> None:
        self.read = read

    def classify(self, batch: Sequence[tuple[str, str | None]]) -> list[Verdict]:
        return [classify_one(text, context, self.read) for text, context in batch]


_DEFAULT = RuleClassifier()


def default_classifier() -> NeedsReplyClassifier:
    reader()  # its weights loaded now (once), not in the middle of a worker's first batch
    return _DEFAULT


# ------------------------------------------------------------------------------ command line


def _parse(line: str, lineno: int) -> tuple[str, str | None]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"line {lineno}: not JSON ({e.msg})") from None
    except ValueError as e:  # a number of over 4,300 digits (Python's limit on reading one)
        raise ValueError(f"line {lineno}: not JSON that can be read ({e})") from None
    except RecursionError:  # [[[[... thousands deep: the parser gives up, as it should
        raise ValueError(f"line {lineno}: not JSON (nested too deeply)") from None
    if isinstance(obj, str):
        return obj, None
    expected = f'line {lineno}: expected {{"text": "...", "context": "..." or null}}'
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        raise ValueError(f"{expected}; the text is missing or not a string")
    context = obj.get("context")
    if context is not None and not isinstance(context, str):
        raise ValueError(f"{expected}; the context is not a string")
    return obj["text"], context


def _write(out: TextIO, batch: list[tuple[str, str | None]], classifier: NeedsReplyClassifier) -> None:
    for v in classifier.classify(batch):
        out.write(json.dumps({"label": v.label, "score": round(v.score, 4)}) + "\n")
    out.flush()


def run_cli(
    stdin: Iterable[str | None],
    stdout: TextIO,
    batch_size: int = 1024,
    classifier: NeedsReplyClassifier | None = None,
) -> int:
    """`siyu needs-reply`: JSON lines {"text", "context"} in, one {"label", "score"} line out per
    input line (blank lines are skipped); a None in `stdin` says nothing more is ready yet, and
    what came is answered then (see `lines_as_they_come`). Returns how many messages were classified; raises
    ValueError naming the line on input that is not such an object (or not UTF-8), once the
    lines before it are answered: the output always matches the input line for line."""
    classifier = classifier or default_classifier()
    batch: list[tuple[str, str | None]] = []
    count = 0
    lines = _numbered(stdin)
    while True:
        try:
            lineno, line = next(lines)
            if line is None:  # the input waits: its writer may be waiting for these answers
                if batch:
                    _write(stdout, batch, classifier)
                    count += len(batch)
                    batch = []
                continue
            if not line.strip(_BLANK):
                continue
            item = _parse(line, lineno)
        except StopIteration:
            break
        except ValueError:  # the lines before the bad one are answered first
            if batch:
                _write(stdout, batch, classifier)
            raise
        batch.append(item)
        if len(batch) >= batch_size:
            _write(stdout, batch, classifier)
            count += len(batch)
            batch = []
    if batch:
        _write(stdout, batch, classifier)
        count += len(batch)
    return count


# What a blank line holds: JSON's whitespace. (str.strip also takes U+3000, U+001C ... for
# blank: such a line is not JSON, and is refused by number rather than skipped unanswered.)
_BLANK = " \t\r\n"


def _numbered(lines: Iterable[str | None]) -> Iterator[tuple[int, str | None]]:
    lineno, it = 0, iter(lines)
    while True:
        try:
            line = next(it)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            raise ValueError(f"line {lineno + 1}: not UTF-8 text ({exc.reason})") from None
        if line is None:
            yield lineno, None
            continue
        lineno += 1
        yield lineno, line.removeprefix("\ufeff") if lineno == 1 else line  # (a BOM is no content)


def lines_as_they_come(stream: BinaryIO) -> Iterator[str | None]:
    """The UTF-8 lines of `stream`, strictly decoded one by one (so a refusal names its line),
    and None whenever the next read would wait. A program that writes a line and waits for
    its answer (a co-process, `tail -f |`) gets it: answers held for a full batch never came."""
    fd = _fileno(stream)
    pending: list[bytes] = []
    while True:
        if fd is not None and not _ready(fd):
            yield None
        data = stream.read1(1 << 16)  # (what is buffered, else one read: the buffer is left empty)
        if not data:
            break
        *whole, rest = data.split(b"\n")
        for piece in whole:
            pending.append(piece)
            yield (b"".join(pending) + b"\n").decode("utf-8")
            pending = []
        if rest:
            pending.append(rest)
    if pending:
        yield b"".join(pending).decode("utf-8")


def _fileno(stream: BinaryIO) -> int | None:
    try:
        return stream.fileno()
    except (OSError, ValueError):  # (in memory: never waits)
        return None


def _ready(fd: int) -> bool:
    try:
        return bool(select.select([fd], [], [], 0)[0])
    except (OSError, ValueError):  # (Windows selects sockets only: read on, as before)
        return True
