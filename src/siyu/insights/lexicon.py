"""The closing-remark grammar: phrase classes a customer's message must consist of, entirely,
to count as a closing remark, and the cues that veto it. Regex fragments, joined in
needs_reply.py; the text they see is NFKC-normalised, lower-cased, with runs of one character
shortened to two and punctuation turned into single spaces (see needs_reply.normalize)."""

from __future__ import annotations


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words around the phrases: particles and laughter ...
PARTICLE = (
    r"那就|那我们|那我|那|就|先|也|都|还是|嗯哼|哈哈|哈|呵呵|嘿嘿|嘻嘻|嘿|hh|haha|hiahia|呢|呀|啊|啦|"
    r"哦|噢|喔|欧|阿|了|吧|哒|滴|嘛|哟|哇|噻|嗷|捏|咯|喽|额|呃|emm|em|的|得|der|捂脸|不好意思|好意思|"
    r"鸭|叭|吖|吆|嘞|咧|昂|耶|呐|唉|哎呀|哎哟|哎|嗐|"
    # Cantonese "all, fully" after a verb (明白晒, 收到晒, 辛苦晒); not 晒 "to sun" (晒单, 晒太阳)
    r"(?<=[\u4e00-\u9fff])晒"
)
# ... and ways of addressing the staff member (alone, they call for attention: needs a reply).
ADDRESS = (
    r"亲爱的|亲爱哒|亲爱滴|亲耐的|亲亲|亲|美女|帅哥|小姐姐|小哥哥|小哥|姐姐|哥哥|妹妹|小妹儿|妹儿|小可爱|宝宝|宝贝|宝|老师|客服|"
    r"师傅|老板|宝子们|宝子|哥们|老铁|兄弟|好妹子|妹子|妹纸|小妹|掌柜的|掌柜|店家|小二|姐妹们|姐妹|集美|"
    r"经理|顾问|管家|医生|大夫|主任|护士|教练|(?![叫让请找派喊给要换问询约聘])[\u4e00-\u9fff]?(?:老师|经理|总|姐|哥|工|先生|女士|顾问|医生|大夫|主任|教练|师傅|"
    r"助理|管家|小姐|同学|教授|律师|专家|院长)"
)
FILLER = PARTICLE + "|" + ADDRESS

# Plain acknowledgement: closing after a statement, an answer after a staff question.
ACK = (
    r"好的?|好滴|好哒|好嘞|好咧|好勒|好噠|好得|好呀|好啊|好吧|好把|好哦|好嘛|好好|嗯+|恩+|嗯呐|嗯哪|恩呐|恩哪|"
    r"en|enen|哦+|噢+|喔+|oh|o|oo|欧了|欧克|ok了?|okay|okk?|oki|okie|okey|kk|oj8k|ojbk|妥了?|妥妥的?|稳妥|得嘞|搞定|行的?|行吧|行啊|"
    r"haode|hao|号的|0k|行嘞|中|成|成吧|成嘞|没得问题|莫问题|木问题|不要紧|(?:暂时|目前|现在|应该)?没问题|"
    r"(?:我)?(?:都|也)?(?:会|学会|会用|会弄)了|(?:能|可以)?理解|期待(?:一下|下)?|(?:我)?一定(?:的|会的)?|"
    r"那行|也行|可以的?|可|没问题|没毛病|没错|是的?|对的?|对对|yes|yep|yeah|yup|sure|fine|alright|"
    r"gotit|noted|get|嗯对|"
    r"(?:我|我们)?(?:这回|这下|现在)?(?:都|已经|也)?(?:知道|明白|了解|清楚|懂|晓得|收到|收悉|get到|看到|记住|记下|记得|领到|收下|看见|"
    r"找到|拿到|听懂|看懂|搞懂|弄懂|听明白|看明白|搞明白|弄明白)"
    r"(?:了|啦|哈)?|(?:我|我们)?(?:知道|明白|懂|会|学会)(?:了)?(?:怎么|如何)(?:弄|做|操作|办|用|回事|处理|填|改|"
    r"设置)了?|(?:我|我们)?(?:会|一定)?(?:注意|留意|记住|记得)(?:的|了)|"
    r"(?:下次|以后)(?:我|我们)?(?:会)?(?:注意|留意|小心)(?:一下|下|点)?|(?:这下|这样|那就|那我就|我就)?(?:放心|安心)(?:很多|多了|不少|了)(?:了)?|(?:你|您|医生|大夫|老师)?(?:这么|这样)?(?:说|讲|一说)?(?:我)?就(?:放心|安心)(?:了|啦)|那太好(?:了|啦)?|"
    r"那就(?:好|行|可以)(?:了|啦)?|(?:没事|没问题|好了|能用)就(?:好|行)(?:了|啦)?|"
    r"奥奥|奥|"
    # relief that a feared mistake did not happen (我还以为出问题了); not a disappointed
    # expectation (我以为包邮的), which the staff should answer
    r"(?:我|我们)?(?:还|原来|本来)?以为(?:我|是)?(?:出|有|弄|搞|点|下|填|选|买)?(?:问题|错|错了|什么问题|什么事|丢了|坏了)"
    r"(?:了|呢|啊)?|"
    r"(?:这样|这样子|原来如此|原来是这样)(?:啊|呀|哦|的)?|原来(?:是)?这样(?:用|弄|装|操作|做)的?|好吧|那好吧|(?:实在|真|真的|太)不好意思|"
    # the customer apologises (实在抱歉, 非常抱歉): nothing for the staff to do
    r"(?:实在|真|真的|非常|十分|很)?抱歉(?:了|啦)?|"
    # resigned acceptance (只能这样了)
    r"(?:那)?(?:也)?只(?:能|好)(?:这样|如此)(?:了|吧|啦)?|"
    r"(?:那是|那)必须(?:的)?|必须的"
)

THANKS = (
    r"(?:还是要|还是|再次|真心|真的很|非常|十分|太|万分|真的|真是|超级|特别|很|谢谢|感谢)?"
    r"(?:谢谢|感谢|多谢|谢了|谢啦|谢|蟹蟹|三克油|感恩|感激|劳驾|3q|thx|thanks|thankyou|thanku|ty|tks|xiexie)晒?"
    r"(?:你们|您们|你|您|亲亲|亲|大家|老师|客服|小姐姐|小哥哥|师傅|医生|大夫|主任|专家)?(?:了|啦|哈|哦|呀|啊|阿)?"
    r"(?:(?:的|对我的)?(?:耐心|热心|细心|及时)?的?(?:解答|帮助|帮忙|帮手|回复|提醒|讲解|解释|服务|告知|分享|推荐|"
    r"照顾|支持|配合|关心|指导|指点|处理|耐心|热心|解惑|答疑)|送的[\u4e00-\u9fff]{1,3})?|"
    r"(?:给(?:你|您|你们|大家))?添?(?:麻烦|打扰)(?:你|您|你们|大家|各位|亲|亲亲|老师|师傅|医生|经理|妹子|小妹|美女|客服)?"
    r"(?:你|您)?(?:了|啦|咯|喽|晒)(?:给(?:你|您|你们))?|"
    r"(?:(?:你|您|你们)?费心|有劳|让你费心|让您费心)(?:你|您|你们|亲)?(?:了|啦)?|"
    # (好的麻烦你: with nothing after it, thanks; 麻烦你帮我查下 is a request, and more than this phrase)
    r"麻烦晒?(?:你|您|你们)(?:啦|咯|喽)?|"
    r"(?:这么晚|大晚上的|这么久)?(?:(?:你|您|你们)也?)?辛苦(?:你|您|你们|亲)?(?:了|啦)?|拜托(?:你|您|你们|亲)?(?:了|啦)?|不客气|(?:你|您|你们)?太?客气(?:了|啦)|客气客气|"
    r"言重(?:了|啦)|过奖(?:了|啦)?|不麻烦(?:的|了)?|"
    r"不用谢|不谢|应该的|"
    # (谢谢你) 帮我解答了这么多问题
    r"(?:帮我|给我|为我)?(?:解答|回答|解决)(?:了(?:这么多|那么多|我这么多|我的)?|这么多|那么多)的?(?:问题|疑问)"
)

BYE = (
    r"再见|再会|拜拜|拜|(?<!\d)(?:88|886)(?!\d)|bye|byebye|回见|下次见|(?:明天|后天|周.|星期.|下周.?|到时候?|晚上|下午|上午|"
    r"回头|改天|一会|待会|等会)见|晚安|(?:你|您)?(?:也)?(?:要)?(?:早点休息|注意休息|早点睡)|(?:我)?(?:先)?睡(?:觉)?(?:了|啦|去了)|(?:那就|那|就|先)?(?:这样|这些)(?:吧|了)?|先聊到这|回聊|"
    r"(?:改天|有空|下次|回头)(?:再)?聊|告辞|溜了|先下了|先撤了|(?:我)?先(?:关|退出|下线)(?:了|啦|咯)|"
    r"(?:那|就)?(?:先)?不聊了|(?:就|只有|只是)这(?:两|几|一|些)(?:个)?(?:问题|事)(?:了|啦)?|(?:我)?(?:先)?(?:关闭|关掉|关了|退出)(?:窗口|对话|会话|聊天)(?:了|啦)?|早安|午安|(?:我)?先(?:去)?忙了?|(?:你|您)(?:先)?忙吧?|"
    r"不打扰(?:你|您|你们)?(?:了|啦|咯|喽)|(?:请|可以)?(?:结束|关闭|关掉)(?:对话|会话|聊天|咨询|问诊|服务)(?:了|吧)?|离开(?:人工)?(?:会话|对话)|"
    r"(?:你也|您也|也祝你|也祝您)(?:是|一样)|(?:提前)?(?:祝你|祝您|也祝你|也祝您|你也|您也|同)?(?:同乐|快乐|愉快|顺利|健康|新年快乐|节日快乐|中秋快乐|"
    r"国庆快乐|春节快乐|元旦快乐|圣诞快乐|注意身体|保重身体|(?:五一|十一|劳动|国庆|中秋|端午|元宵|七夕|清明|重阳|儿童|妇女|教师|母亲|父亲)节?快乐|周末愉快|生活愉快|工作顺利|工作愉快|身体健康|万事如意|心想事成|"
    r"恭喜发财|旅途愉快|一切顺利|开心|好运)+"
)

_VERY = r"(?:真的太|真是太|真的很|真的|真是|真|也太|太|很|超级|超|非常|特别|还挺|挺|蛮|贼|好)"
# What a customer praises about the goods (东西挺好的, 质量很好, 好吃): never after 不/没.
_GOODS = r"(?:东西|质量|衣服|宝贝|商品|样子|外观|款式|味道|口感|效果|包装|做工|面料|颜色|尺码|大小|饭|菜)"
# What a customer praises about the staff (服务态度不错, 解答的很全面到位).
_ABOUT = r"(?:服务态度|服务|态度|效率|速度|回复|客服|解答|解释|讲解|回答|分析)"
PRAISE = (
    rf"(?:你们|你|您)?的?(?:{_ABOUT}的?)?{_VERY}"
    r"(?:棒|赞|专业|耐心|贴心|给力|靠谱|厉害|nice|负责|细心|热情|周到|快|及时|高效|详细|清楚|仔细|全面|到位|用心|好){1,2}"
    r"(?:了|啊|呀|的|哒)?|"
    rf"(?:你们|你|您)?的?{_ABOUT}?"
    r"(?:棒|赞|专业|耐心|贴心|给力|靠谱|厉害|nice|负责|细心|热情|周到|及时|高效)(?:了|啊|呀|的|哒)?|"
    rf"(?:{_GOODS}|{_ABOUT})?{_VERY}?(?:好吃|好喝|好用|好看|舒服|合适|漂亮|划算|实惠|不错|满意|好)(?:的|了|啊|呀|哒)?|"
    r"(?:给你|给您|给你们)?(?:个|五星|5星)?好评|(?:一定|会)?(?:给你|给您|给你们)(?:个|五星|5星)?(?:评价|满分)|"
    r"(?:已经|已)?(?:给你|给您|给你们)?(?:评|打|点)了?(?:个)?(?:五|5|满)(?:星|颗星|分)|"
    r"五星|5星|五心|5心|满分|(?<!\d)(?:5|10)分|五分|点赞|给你点赞|赞一个|(?<!\d)66(?!\d)|牛|牛逼|nb|yyds|"
    r"(?:会|一定|还会)?(?:继续|一直)(?:关注|支持|光顾)(?:的|你们|你家|您家)?|"
    r"棒棒哒|爱你|么么哒|比心|mua|好人一生平安|好人|(?:帮|帮了)(?:我)?(?:大忙|很大的忙|大大的忙)(?:了|啦)?|下次(?:还|再)?(?:来|光顾|找你|找您|买|点|来买|来点)|"
    rf"(?:京东|你们|你家|您家)?的?(?:售后|售前)?{_ABOUT}?(?:真是|真的|的确|确实)?没(?:的|得)说|"
    rf"(?:京东|你们|你家|您家)?的?(?:售后|售前)?{_ABOUT}(?:是|真是|真的是)?(?:最好|最棒)的?|"
    # trust kept (我还是相信京东的, 再相信京东一把)
    r"(?:我)?(?:还是|一直|会|再)?(?:相信|信任|支持)(?:京东|你们|你家|您家)(?:的|一把|一次)?|"
    r"还会再来|(?:好|太|真)神奇|美了|美滋滋|满意|很满意|非常满意|不错|还不错|挺不错|完美|perfect|good|great|cool|太好了|太好啦|"
    # approving what the staff said (这个好, 这样挺好的)
    r"(?:这个|这样|这样子|那样)(?:挺|很|真|也)?(?:好|不错)(?:的|啊|呀)?"
)

# The matter is settled, possibly naming what: 退款到账了, 快递收到了, 网好了, 已解决, 收到退款了.
# (No bare 我: 我到了 announces an arrival the staff must act on.)
_THING = (
    r"(?:我的|我们的)?(?:快递|包裹|件|东西|货|宝贝|衣服|鞋子?|裤子|商品|钱|款|退款|余额|餐|外卖|饭|网|宽带|网络|"
    r"网速|信号|电话|手机|问题|卡|账号|账户|发票|短信|邮件|验证码|课程?|资料|券|优惠券|红包|积分|额度|话费|流量|"
    r"密码|系统|页面|app|数据|订单|单号|赠品)"
)
_SETTLED = (
    r"(?:好|可以|行|解决|搞定|搞好|弄好|处理好|修好|装好|办好|ok|没问题|正常|恢复正常|能用|可以用|好用|恢复|能登录|登上|"
    r"登录上|联系上|打开|能看到|看得到|能收到|收到货|到账|到货|到|填好|改好|领|领到|收到|拿到|找到|看到|签收|退回|退回来|通|能上网|能打|"
    r"打通|能登上|登上去|登进去|能进去|能看|正常工作|能正常工作|能工作|可以工作)"
)
DONE = (
    rf"(?:{_THING}(?:已经|已|都|也|终于|刚)?|已经|都|现在|终于|总算|刚刚|刚)?{_SETTLED}(?:了|啦)(?:可以了)?|"
    r"(?:好像|貌似)(?:能用|可以用|好|可以|正常|能正常工作)了|"
    rf"{_THING}?(?:已经|已){_SETTLED}|(?:我)?(?:收到|拿到|找到|领到|看到|查到){_THING}(?:了|啦)|"
    # the staff's how-to worked (推出来了, 拧开了, 装上了): not 坏了 / 掉了, which report a fault
    r"(?:已经|终于)?(?:推|拉|拧|拔|取|弄|打|装|插|按|放|扣|调|连)"
    r"(?:出来|进去|上去|下去|开|上|好|通|正)了"
)
# The customer reports the end of a purchase (确认收货了, 好评了). Not a payment, an order or a
# parcel sent (已付款, 下单了, 寄出了): those are news the staff act on (ship it, look out for the
# return), nor 发了 / 提交了 / 上传了, which hand the staff something to look at.
CUSTOMER_DONE = (
    r"(?:我|我们)?(?:(?:已经|已|都|也)(?:确认收货|收货|好评|评价)(?:完|好|过)?(?:了|啦)?|(?:确认收货|好评|评价)(?:完|好|过)?(?:了|啦))|"
    r"(?:我|我们)?(?:已经|也|终于|刚|刚刚)?(?:联系上|找到|搞定|解决)(?:了|啦)"
)

# "Nothing else": closing after a closing check or a statement; an answer after a question.
# A bare 没有 only counts after a closing check (after a statement it contradicts: 没有啊).
# Never followed by more text than NOTHING_NEXT allows (没有收到 is a complaint, not 没有 + 收到).
NOTHING = (
    r"(?:(?:我|我们)?(?:暂时|目前|现在|应该|也|再|就再)?(?:没有|没|木有|无)(?:(?:其他|其它|别的|啥|什么|任何)(?:问题|事|事情|疑问|需要|"
    r"要问的|的)?(?:了|啦|儿|咯)?|(?:问题|事情|疑问)(?:了|啦|咯)|(?:了|啦|咯|喽))|(?:暂时|目前|现在)?就(?:这些|这样)(?:了|啦|吧)?|"
    r"(?:其他|其它|别的)(?:的)?(?:(?:问题|事|事情|疑问)(?:暂时|目前|也|都)?)?(?:没有|没|木有)(?:什么|啥)?(?:了|啦|咯))"
)
NOTHING_NEXT = r"$|\s|谢|感|哈|亲|呢|哦|吧|啊|呀|辛苦|拜|没|再见|祝|宝|美女|客服"
NOTHING_BARE = r"(?:暂时|目前|现在|应该|也|再)?(?:没有|没|木有|无)"
# "Never mind": closing even after a staff question (没事了 is no answer the staff must act on).
NEVER_MIND = (
    r"(?:没|木)事儿?(?:了|啦)?|没关系(?:的|啦)?|"
    # the customer blames themselves (都怪我, 是我自己没看清楚): nothing for the staff to put right
    # (not 怪我咯, 我的问题呢, 没看清楚 alone: a sneer, a question, a request to see it again)
    r"(?:都|也|这|只能)怪我(?:自己)?(?:了|啦)?|(?:是|都是)我(?:自己)?的(?:错|问题)(?:了|啦)?|我(?:自己)?的错|"
    r"(?:是|都是)?(?:我|怪我)(?:自己)?没(?:看好|看清楚|看清|注意)(?:了|啦)?"
)

REFUSAL = (
    r"(?:那|就)?(?:先|暂时|暂|目前|现在|还是)?"
    r"(?:不用|不需要|不要|不必|不考虑|不了|算了|不买|不办|不约|不报|不看)(?:修改|改|麻烦|处理|弄|帮忙|看|查)?"
    r"(?:你|您|你们)?(?:了|啦|哈|吧)?"
)
# Changing one's mind (不退了, 不取消了): closing after a statement, but an answer the staff must act on
# after a decision question (确定要取消吗？ 不取消了), so it is among the weak phrases.
REFUSAL_CHANGE = (
    r"(?:那|就)?(?:先|暂时|还是)?不(?:退|换|买|办|弄|改|寄|拿|报|约|问|咨询|申请|投诉|取消|退款|退货|换货|补|开|续费|延期|"
    r"预约|订|修改)(?:了|啦)(?:吧)?"
)

# Deferral: the customer will think, ask someone, wait, try, come back later.
_WHEN = (
    r"(?:先|再|还是|回头|上午|下午|中午|后天|今天|周[一二三四五六日末天]|星期[一二三四五六日天]|"
    r"下周[一二三四五六日末]?|这周[一二三四五六日末]?|到时候?|过几天|过两天|过段时间|过阵子|晚点|晚些|等下|"
    r"等会儿?|待会儿?|一会儿?|稍后|随后|明天|今晚|晚上|回去|回家|马上|这就|现在|周末|下周|改天|就|去|下班后?|下楼|出门|近期|"
    r"(?:周[一二三四五六日末天]|星期[一二三四五六日天]|明天|今天|月底|下周)之?前)"
)
# What a customer says they will now do themselves (我下午去寄, 我清一下, 马上付): closing.
_SELF = (
    r"付款|支付|下单|拍下|买|填|注册|登录|申请|操作|领|扫码|充值|寄|寄回|寄过去|拿|取|付|改|修改|清|清理|翻|翻翻|"
    r"查询|查看|备注|加购|加购物车|加入购物车|看|重启|刷新|安装|重装|更新|升级|设置|配置|检查|核对|绑定|激活|评价|确认收货|"
    r"签收|拒收|拒签|拍照|拍照片|打印|删|删除|写|做|交|填写|导出|导入|整理|办|办理|查|找|试|复查|排查|化验|拍片|就诊|看病|看医生|挂号"
)
_PEOPLE = (
    r"(?:老公|老婆|爱人|家里人|家人|孩子他爸|孩子他妈|孩子爸爸|孩子妈妈|孩子|家长|领导|老板|同事|财务|爸妈|父母|"
    r"爸爸|妈妈|老爸|老妈|爸|妈|朋友|媳妇|对象|男朋友|女朋友|家里|他们|他|她)"
)
_OTHERS = (
    r"(?:他|她|他们|商家|卖家|店家|快递|快递员|快递小哥|配送员|配送小哥|送货员|师傅|站点|售后|厂家|银行)"
)
_GO_FOR = r"提车|拿|取|看|店里|门店|报到|上课|复诊|签约|办理|售后|医院|医院看看"
DEFER = (
    rf"(?:我|我们)?{_WHEN}*(?:再|在)?(?:想想|想一想|考虑(?:一下|下|考虑)?|琢磨(?:一下|下)?|"
    r"(?:(?![你您让叫派安麻发寄请])[\u4e00-\u9fff]){0,6}?(?:看看|看一下|看下|瞅瞅|试试|试一试|试一下|试下|转转|逛逛)"
    r"(?:看|吧)?(?:再说)?|"
    r"研究(?:一下|研究|下)?|(?:先)?用着(?:吧|先)?|先凑合(?:用|着)?|将就(?:着)?用(?:吧)?|"
    # if anything comes up, contact me (有什么事再联系就好)
    r"有什么(?:事|问题|情况|消息)?(?:再|就)?(?:跟我)?(?:再|就)?(?:联系|说)(?:我)?(?:就好|就行)?|"
    r"比较(?:一下|下)?|对比(?:一下|下)?|弄弄|弄一下|操作(?:一下|下)?|处理(?:一下|下)?|整理(?:一下|下)?|"
    r"准备(?:一下|下)?|(?:找找|找一下|找下|查查|查一下|查下)(?:看)?|拍(?:一下|下)?|确认(?:一下|下)?)|"
    rf"(?:我|我们)?{_WHEN}*(?:跟|和|同|问问|问下|问一下)(?:我)?{_PEOPLE}(?:商量|讨论|说|沟通|商量商量)?"
    r"(?:一下|下)?|"
    # passing it on, reminding the child, having the husband call back
    rf"(?:我|我们)(?:会|一定)?(?:转告|告诉|提醒|督促|叮嘱|通知)(?:一下|下)?(?:我)?{_PEOPLE}(?:一下|下|的)?|"
    rf"(?:我|我们)(?:让|叫)(?:我)?{_PEOPLE}(?:联系|找|打给|回电话给|回复)(?:你|您|你们)|"
    # taking it up with the courier or the seller oneself (我联系他吧, 已经发信息给配送小哥了)
    rf"(?:我|我们)(?:已经)?(?:{_WHEN})*(?:联系|找|问问|问|发信息给|发消息给|打电话给)(?:一下|下)?{_OTHERS}"
    r"(?:打电话|发信息|发消息)?(?:吧|了|一下|下)?|"
    # ... or said the other way round, as a plan (我跟商家沟通一下; not 我已经跟商家说了 after "contact
    # the seller", which pushes back, nor 我跟商家沟通过了 while the staff looks into it)
    rf"(?:我|我们)(?:{_WHEN})*(?:和|跟|同|给){_OTHERS}(?:联系|沟通|打电话|发信息|发消息)(?:一下|下|吧)|"
    # only asking (没了，我就是问一下)
    r"(?:我)?(?:就是|只是|随便)(?:想)?(?:问一下|问问|问下|咨询一下|看看|了解一下|了解下)(?:而已)?|"
    # checking for oneself whether it works (我先看看能不能用): with 我 and nothing but time words
    # before it, as 看看能不能便宜点 and 我想看看有没有优惠 ask the staff
    rf"(?:我|我们){_WHEN}*(?:看看|看一下|看下|试试|试一下|试下|查查|查一下|找找看|找一下)"
    r"(?:能不能|可不可以|行不行|会不会|有没有)(?:(?![你您给帮])[\u4e00-\u9fff]){1,6}|"
    # looking up something of one's own the staff asked about (我看一下购买日期)
    rf"(?:我|我们){_WHEN}*(?:看|查|找|翻)(?:一下|下)(?:我的)?(?:购买日期|购买时间|日期|时间|订单号|单号|订单|记录|物流|"
    r"快递单号|发票|邮箱|短信|截图|照片|聊天记录|购买记录)|"
    # trying once more (我明天再试一次)
    rf"(?:我|我们)?{_WHEN}*再试一(?:次|遍|下)(?:看看|看)?|"
    # looking up what the staff asked for (我在找订单号呢), ordering again (那我重拍吧)
    r"(?:我|我们)?(?:正)?在(?:找|查|翻|拍)(?:一下|下)?(?:订单号|单号|订单|照片|图片|截图|发票|小票|说明书|条形码)|"
    r"(?:那)?(?:我|我们)(?:就|再|先|去|现在)*(?:重拍|重新拍|重新下单|重下单|重新买|重新下|从新下|重下|下单子)(?:了)?"
    r"(?:一个|一下|下)?吧?|"
    rf"(?:我|我们)?{_WHEN}*(?:(?:在家)?(?:等等|等一下|等下|等着|等待|等)(?:着)?(?:你|你们|您|师傅|快递|客服|老师|医生|"
    r"物流|快递员|小哥|他们|师傅|退款|货|结果|审核){0,2}(?:两天|一两天|一会儿?|会儿|半天|一天)?(?:的)?"
    r"(?:消息|通知|电话|回复|回电|回话|回信|信儿|答复|反馈|安排|收货|发货|到货|退款|到账|上门|审核|处理|结果|联系我|通知我|来|送|联系|短信|"
    r"邮件|信息|快递|包裹){0,2}(?:看)?|(?:(?:您|你|请)?稍等|等会儿?|待会儿?)(?:一下|下)?"
    r"(?:我)?(?:去)?(?:拍|找|查|看|拿|发|翻|问)?(?:一下|下)?(?:发?给(?:你|您)(?:看)?)?|不急|不着急|慢慢来)|"
    # once the parcel is here, the customer comes back (等我货收到再联系你)
    rf"等(?:我|我们)?(?:{_THING}|货)?(?:收到|到了|到|回来|回家|下班|忙完|有空|看完|试完|用完|试过)(?:了)?(?:以后|之后)?"
    r"(?:我)?再(?:联系|找|问)(?:你|您|你们)|"
    r"(?:有|等)(?:消息|结果|进展|情况|通知|动静)了?(?:的话)?(?:再|就)?(?:告诉我|通知我|联系我|跟我说|说一声)"
    r"(?:一下|下)?|等我(?:一下|下|会儿?|一会儿?)|静候佳音|静等|坐等|等(?:你|您|你们)?(?:的)?好消息|"
    rf"(?:我|我们)?{_WHEN}*再(?:问|问问|来问|咨询)|"
    rf"(?:我|我们)?{_WHEN}*自己(?:处理|弄|来|解决|搞|看看|去|操作|想办法|改|修改)(?:一下|下|了)?|"
    r"(?:实在不行|不行的话|实在不行的话)?(?:我|我们)(?:再|自己)?想(?:想)?办法|"
    rf"(?:我|我们)?{_WHEN}*(?:(?:如|如果|要是)?还?(?:有(?:问题|需要|事|疑问|什么问题)|需要的话|不行|不懂|之后|以后|回来|"
    r"(?:收到货?|收货|到货|到了|好了|弄好|装好|有结果|有消息|想好|考虑好|决定好|商量好)了?)(?:的话)?(?:我|我们)?(?:在(?=联系))?|"
    r"(?:如|如果|要是)?(?:我|我们)?)(?:再|还|就)?(?:给(?:你|您)(?:打电话|回电话|发消息)|找你|找您|"
    r"找你们|联系你|联系您|联系你们|联系客服|找客服|联系|问你|问您|咨询|跟你说|告诉你|通知你|回复你|回你|答复你)|"
    r"(?:再|回头|到时|到时候)(?:联系|说|聊)|(?:我)?(?:跟|和)(?:他|她|他们)(?:说|讲)(?:一下|下)?|转告(?:一下|下)?|"
    r"(?:我|我们)?(?:到了|回来|回去|看了|试了|收到了)再说|"
    # not a bare 就 without 我: 那就办理吧 / 就改吧 tell the staff to go ahead
    # (直接 only after 我: 那我就直接拒收 is the customer's step, 直接办理吧 tells the staff to act)
    rf"(?:{_WHEN}*(?:我|我们){_WHEN}*(?:直接)?去?|(?!就(?:{_SELF}))(?:{_WHEN}+去?)|去)(?:{_SELF})(?:一下|下)?"
    rf"(?:{_THING}|物流|邮箱|订单号)?|"
    rf"(?:我|我们)?(?:{_WHEN}+(?:过来|过去|来|去|到)(?:{_GO_FOR}|一趟)?|(?:过来|过去|来|去|到)(?:{_GO_FOR}))|"
    rf"(?:我|我们)?{_WHEN}*带(?:孩子|家人|车|宝宝|他|她)(?:过来|过去|来|去)|"
    r"(?:我|我们)?(?:会|一定)?(?:准时|按时)(?:来|去)?(?:到|来|去|参加|吃药|复诊|上课|交|提交)(?:的)?|"
    # watching it oneself, going to the doctor if it comes back (我再观察一下, 有症状马上去医院)
    rf"(?:我|我们)?{_WHEN}*(?:再|密切|继续|先|自己)*观察(?:一下|下|几天|两天|一段时间)?|"
    r"(?:如果|要是|万一)?(?:有|出现)(?:症状|问题|情况|不舒服)(?:的话)?(?:我)?(?:马上|再|就)?去(?:医院|就诊|看医生|看)"
    r"(?:确认|检查|看看)?(?:一下|下)?|"
    r"(?:明天|今天|周末|晚上)?(?:我)?(?:都)?在家|(?:明天|今天|周末|晚上|上午|下午|白天)(?:我)?(?:都)?在|"
    r"(?:那)?(?:下次|改天|以后|回头)(?:吧|再说|再来|再买|再约)?|"
    rf"{_WHEN}?(?:以后|下次)?再(?:说|讲)(?:吧|哈)?"
)

# "Whether" after checking for oneself (我看看能不能用) asks nobody; the grammar wants 我 for it.
_SELF_CHECK = r"(?<!看看)(?<!看下)(?<!试试)(?<!试下)(?<!一下)(?<!查查)(?<!找看)"
# 么 as a question particle (在么, 好了么), not in 什么 / 怎么 / 那么 / 这么 / 多么 / 要么.
QUESTION_ME = r"(?<![么什怎那这多要])么(?!么)"

# Whom a customer greets with 好 (老师好, 王总好): not the generic form of address above, which
# takes 做工 for one (做工好 praises the goods).
_GREETED = (
    r"(?:亲爱的|亲亲|亲|美女|帅哥|小姐姐|小哥哥|小哥|姐姐|哥哥|老师|客服|师傅|老板|掌柜的|掌柜|店家|经理|医生|"
    r"大夫|主任|护士|教练|[\u4e00-\u9fff](?:老师|经理|总|姐|哥|医生|大夫|主任|教练|师傅))"
)

# Anything here keeps a message from being a closing remark: a question, a request, or a
# greeting that calls for attention (哈喽 would otherwise parse as two particles; 老师好 as a name
# and an acknowledgement).
VETO = (
    rf"[?]|吗|{QUESTION_ME}|哈喽|哈罗|hello|(?<![a-z])hi(?![a-z])|(?:^|\s){_GREETED}好(?=\s|$)|"
    r"怎(?!么(?:弄|做|操作|办|用|回事|处理|填|改|设置)了)|咋|(?<!没)(?<!没有)(?<!木有)啥|"
    # 嗯哪 / 恩哪 say yes (northern); 哪 alone asks which
    r"(?<![没有])什么|多少|(?<!过)几|(?<![嗯恩])哪|谁|为何|为啥|(?<![道白懂会])如何|是否|能否|可否|"
    rf"{_SELF_CHECK}(?:能不能|可不可以|行不行|会不会|有没有)|"
    r"好不好|对不对|是不是|(?<!不)要不要|(?<!不)用不用|需不需要|多久|多长|多大|(?<!就)[是对](?:吧|嘛)(?=\s|$|哈|亲|呀|啊|老师|师傅|医生|美女|客服)|"
    r"多远|干嘛|(?:可以|到|发|退|修好|弄好|处理|办好|改好|开通|到账|好|就行)了嘛(?=\s|$)|(?:你|您)的意思是|多钱|"
    r"还有什么(?!(?:问题|事|需要)[^ ]{0,4}(?:再|就|随时|联系|找))|"
    # any "A not A" question (合不合适, 贵不贵, 疼不疼); not 不烦不烦 ("not at all"). One the
    # customer settles alone (我回家试试合不合适) is taken out before (needs_reply._SELF_AB).
    r"(?<!不)(?P<a>[\u4e00-\u9fff])不(?P=a)|"
    r"(?:帮我|给我)(?!(?:解答|回答|解决)了?(?:这么多|那么多|我这么多))|(?<![谢的])(?<!谢你)(?<!谢您)帮忙|"
    r"发我|发给我|"
    # "give me a ..." said the Cantonese way round (俾張單我睇下, 俾啲資料我)
    r"给(?:个|张|張|份|条|次|本|点|些|件|只)[^ ]{0,5}?我|"
    # 麻烦 + what to do is a request (麻烦备注好, 麻烦提醒师傅接听); 麻烦你了, 添麻烦了, 太麻烦,
    # 麻烦你好久 and 麻烦你们白跑一趟 are not. So is 劳驾 (Cantonese 唔該: 唔該幫我查下, 唔該快啲)
    rf"(?:(?<![不用必太好怕添很真挺])麻烦|劳驾)(?:{ADDRESS}|你们|您们|你|您|大家)?(?![了啦咯喽哈呀啊呢的哦嘞谢感你您们好白久晒\s]|$|大家|各位|这么|那么|半天|多次|一趟|费心|辛苦|操心|久等|百忙|到(?:你|您)|{ADDRESS})|"
    # a bare "deal with it" (处理下, 亲 处理一下 谢谢) tells the staff, where 我处理一下 is the
    # customer's own step
    r"^(?:处理|核实)$|(?:^|\s)(?:处理|核实)(?:一下|下)(?=\s|$|哈|吧|啊|呀|谢)|"
    # asking to be told it is so (不用我再联系了吧, 那我不用再申请了吧)
    r"(?:不用|不需要)(?:我|我们)?再[\u4e00-\u9fff]{1,6}了吧$|"
    r"请(?:你|您)?"
    r"(?:帮|给|发|把|尽快|安排)|尽快|赶紧|快点|催|(?:真的|很|非常|特别|挺|太|好)着急|我要|我想(?:要|买|问|咨询|了解|退|换|改|预约|订|办|知道)|"
    r"(?:^|\s|那)我(?:的|们的?)?呢|我需要|另外|顺便|对了|但是|不过|可是|没收到|收不到|(?<=[^先那就时是了\s])不了|"
    r"(?<!\d)(?!886(?!\d))\d{3,}|"
    # asking not to end the chat yet (先不要结束服务, 不要离开人工会话)
    r"(?:不要|不用|别|不想|先别)(?:结束|关闭|关掉|离开|退出)|"
    # a final 未 asks "yet?" (Cantonese 到咗未, 發咗貨未, 得未呀)
    r"(?<=[\u4e00-\u9fff])未(?=\s|$|呀|啊|呢|吖)"
)

# Content the reader is not asked about: agreeing to what the staff offered or choosing (听你的,
# 那我先买两盒, 就要这个), telling the staff to do something (你们再仔细看看, 别再发错了), or
# naming trouble or annoyance (精神也不太好, 推销太频繁了很烦): the staff must act.
NOT_READ = (
    r"听你的|听您的|按你说的办|按您说的办|就这个|就它|就买|就选|就定|就约|买(?:[一两二三四五六七八九十几]|它|这)|"
    r"(?<![原出起回本])(?:来|要|拿|订|定)(?:[一两二三四五六七八九十几]|个|份|件|这)|"
    r"(?:你们|您|你)(?:再|先|快|赶紧|给|帮|去|看|查|问|处理|联系|安排|发|寄|退|换|补|核实|确认)(?![得的])|"
    r"别再|不要再|不是这个|不是那个|^(?:我|我已经|已经)?(?:跟|和|与)[^ ]{1,4}(?:沟通|联系|协商)过了$|"
    # trouble or annoyance in so many words: a customer who says it is waiting for an answer
    # (not when it is gone: 现在没什么不舒服的了)
    r"(?<!没)(?<!没有)(?<!没什么)不(?:太|大|怎么|是很)?(?:好(?!意思)|舒服|对劲|正常|灵|管用|见好|牢固|结实)|"
    r"(?<!没)(?<!没有)(?<!不)(?:遇到|碰到|出现|出了|出)[^ ]{0,4}问题(?![^ ]{0,2}再)|"
    # something still outstanding, a changed address, a request or a complaint in passing
    r"还没(?:加|到|退|收|给|开|发|补|处理|联系|批)|"
    r"(?:改|换)(?:成|到)?[^ ]{0,2}地址|地址[^ ]{0,3}(?:改|换|错)|"
    # a question asked with 吧 (不会取消吧, 不用再提供了吧, 应该先点这个吧) or an instruction with 就行
    r"(?:能|可以|不会|不用|没问题|没事|应该|是不是)[^ ]{0,10}吧$|"
    r"(?:改|换|发|寄|退|开|补|放|送|弄)[^ ]{0,4}就(?:行|可以|好)|"
    # ... or with Cantonese 得 (放門口得喇: "leaving it at the door will do")
    r"(?:改|换|发|寄|退|开|补|放|送|弄)[^ ]{0,4}得(?:啦|了)?$|"
    r"还有(?:个|一个|件)?小?事|还有(?:一个|个|一点|一件|件)(?:就是|问题)|"
    r"提醒我|急用|急着|速度[^ ]{0,3}慢|太慢|报销|找你们|"
    r"换(?:个|一个|成|小|大)|来晚|晚了[^ ]{0,3}(?:小时|分钟|天)|迟到|"
    r"(?<![不麻])(?:烦|差劲|垃圾|坑人|恶心|失望|离谱|生气|投诉|差评)"
)

# Staff messages: what kind of turn the customer is answering.
# (Not an offer, 还有一张优惠券可以帮您申请，需要吗, nor the opening 请问有什么可以帮您.)
CLOSING_CHECK = (
    r"还(?:有|需要|要)(?:什么|其他|其它|别的|啥|哪些)|(?:其他|其它|别的)(?:问题|需要|疑问|事)|"
    r"还有(?:疑问|疑惑|不明白|不清楚)[^,，。]{0,6}(?:吗|么|没|呢)|"
    r"还有.{0,6}(?:帮|需要|问题)|有什么(?:问题|需要)(?:我|小妹|这边)还(?:可以|能)(?:帮|为)(?:您|你)|"
    # (有什么需要我可以帮您的 is a closing check without 还 too; 有什么问题我可以帮您 is JD's greeting)
    r"有什么需要(?:我|小妹|这边)(?:可以|能)(?:帮|为)(?:您|你)|"
    r"还有(?:可以|能)?为(?:您|你)服务|"
    # what questions or needs the customer has, asked without 还 (您对配置有什么需求呢): "nothing"
    # answers it, as it answers 还有其他问题吗
    r"(?<!还)有(?:什么|啥)(?:疑问|需求|疑惑|不懂|不明白|不清楚)(?:的地方)?(?=\s*(?:吗|么|呢|嘛|[?]|$))"
)
# The staff asks whether the trouble is over (问题解决了吗, 网络是否恢复正常了呢, 现在能用了吗): a
# yes (是的, 嗯, 可以了) closes the matter, a no (没有, 还没) is the trouble still there.
RESOLVED_CHECK = (
    r"(?:问题|疑问|故障|情况)[^,，。]{0,8}解决(?:了?(?:吗|么|没)|了呢)|"
    r"是否(?:(?!需要|要|帮|给|为|申请)[^,，。]){0,8}(?:解决|恢复|修好|正常了)|"
    r"(?:恢复|修好|修复|解决|搞定|正常|(?:能|可以)(?:正常)?(?:用|使用|上网|打电话|登录)|连上)了(?:吗|么|没|呢)|"
    r"(?<!没)(?<!没有)(?<!未)(?:到账|收到(?:退款|款项|货|包裹|快递))(?:了(?:吗|么|没|呢)|没)|"
    r"(?:有没有|是不是)(?:已经)?(?:修好|恢复|解决|到账|收到(?:退款|货))|现在(?:可以|能|好|行)了(?:吗|么|没|呢)|"
    # whether the customer got through to the courier or the seller (您这边有联系到吗?; not whether
    # the staff can reach the customer: 订单上的电话可以联系到您吗 wants the number confirmed)
    r"(?<!没)(?<!可以)(?<!能)(?:有)?联系(?:到|上)(?!您|你)(?:了)?(?:[^,，。您你]{0,6})(?:吗|么|没)"
)
# The opening line (有什么可以帮您, and without 还 JD's 有什么问题我可以帮您处理或解决呢, which greets
# a customer who has just come in): "nothing" answers it like a closing check; anything else
# the customer says then opens the conversation.
OPENING = (
    r"有什么(?:可以|能|需要)(?:帮|帮助|为)(?:到)?(?:您|你)|"
    r"有什么问题(?:我|小妹|这边)(?:可以|能)(?:帮|为)(?:您|你)"
)
# A shop's welcome line (欢迎光临…旗舰店, 很高兴为您服务) opens the chat too, asking or not.
WELCOME = r"^(?:(?:您好|你好|亲)[,，!！~\s]*)?欢迎(?:光临|来到|咨询)"
COMPREHENSION = (
    r"(?:明白|清楚|了解|懂|看到|收到|看得到|看得见|听懂|理解|看清楚|学会)(?:了|啦)?(?:吗|么|没|嘛|不|吧)|"
    r"(?:能|可以)看(?:到|见)(?:吗|么)|"
    # asked "A not A" (明不明白, Cantonese 明唔明白, 清唔清楚)
    r"明不明白|清不清楚|懂不懂|知不知道|收没收到"
)
WAIT = (
    r"(?:给|容)(?:我|我们|小妹|妹子|客服)?一?(?:点|些)时间|"
    r"稍等|稍候|请稍|马上回复|稍后回复|等我一下|我(?:帮您|给您|这边|去)?(?:查|确认|核实|问|看)(?:一下|下)"
)
# The staff says how they will come back (预计两小时内给您回电, 有结果短信通知您) and asks whether
# that suits (您看可以吗): a 好的 then leaves the staff nothing to answer now, as after "please
# wait". Not when the question also puts a choice or a cancellation to the customer (nor, see
# needs_reply.context_kind, with an offer or a request for the customer to act).
CALLBACK = (
    r"(?:回电|回复|联系|通知|答复|告知|回访)(?:您|你)|(?:和|跟|与)(?:您|你)联系|"
    r"给(?:您|你)(?:短信|电话)?(?:回电|回复|答复|打电话|通知|告知)|"
    r"(?:电话|短信)(?:联系|通知|告知)"
)
CONSENT = r"(?:可以|行|好)(?:吗|么|嘛|不)|可以不可以|行不行|好不好"
CALLBACK_NOT = r"确定|是否|要不要|需不需要|还是|哪个|哪一|哪种|选|同意|取消|退款|退货|换货"
# The staff asks the customer to do something (send, fill in, try); "好的" then needs no reply.
ACTION = (
    r"麻烦|发(?:一下|下|我|给我|过来)|提供|拍(?:一下|照|下|给|张|个)|截图|填(?:一下|写)|上传|告诉我|核对|点(?:一下|击)|"
    r"签(?:一下|个)|带(?:一下|上)|清(?:一下)|重启|刷新|扫码|登录|付一下|留(?:一下|个|下)|先在|您先|试(?:一下|试)|"
    r"重新|留意|关注|查收|耐心等|等待|注意|评价|好评|评分|打分|(?<![我们])私信(?!(?:发)?(?:给)?(?:您|你))|"
    # 可以给我商品的网站吗: the customer is to give the staff something
    r"(?<![您你帮])给我(?!们)"
)
# An offer made as a statement (可以给您补发一个盖子的呢, 可以帮您约周三): "好的" is the go-ahead
# and needs a reply. Not a refusal (不能给您更换), what is done already (能给您补发的都已经补发了),
# what the staff will do anyway (给您补发一个盖子) nor what the customer may do (您可以申请退款).
# For a child, what to give or do to the child is a doctor's advice (可以给孩子吃点益生菌, 可以给
# 宝宝涂点药膏); anything else is an offer (可以给孩子安排一节试听课, 做一次免费的体质测评).
OFFER = (
    # (not "only then can we": 过期了我们才可以帮您补差价; nor the pleasure of serving: 很高兴能为您服务,
    # 很荣幸能帮您)
    r"(?<![您你不才兴幸心])(?:可以|能够?)(?:再|先|免费|直接|马上)?(?:(?:给|帮|为|带)(?!(?:您|你)(?:服务|效劳))(?:您|你|亲|你们|您们|"
    r"(?:孩子|宝贝|宝宝)(?!吃|喝|喂|用|涂|擦|抹|贴|泡|洗|穿|盖|多|少|补充|服用|口服|物理))|"
    r"(?:补发|重发|补寄|上门))(?![^,，。!！]*已经)"
)
# A staff question that still wants a decision, even when it also asks the customer to act.
DECISION = (
    r"需要我|要我|确定|确认|是否|要不要|需不需要|还是|哪个|哪一|哪种|选|同意|帮您|给您|为您|帮你|给你|为你"
)

# [xxx] codes of WeChat's built-in emoji (Chinese and English names, lower-cased). Those that
# carry a question or displeasure make a message need a reply; the others are dropped. A [xxx]
# that is neither an emoji, a sticker nor a media code stays in the text as content.
NEGATIVE_CODES = _words(
    "疑问 发怒 抓狂 流泪 大哭 难过 委屈 生气 怒 撇嘴 鄙视 生病 恐惧 无语 "
    "衰 快哭了 可怜 惊恐 吐 失望 伤心 心碎 凋谢 咒骂 怄火 "
    "差劲 弱 皱眉 天啊 叹气 苦涩 裂开 白眼 翻白眼 晕 问号 打脸 "
    "? angry cry sob sad scowl frown scream "
    "puke dizzy whimper tearingup brokenheart wilt thumbsdown "
    "concerned sigh hurt broken omg speechless"
)
EMOJI_CODES = _words(
    "微笑 色 发呆 得意 害羞 闭嘴 睡 尴尬 调皮 呲牙 惊讶 "
    "酷 冷汗 偷笑 愉快 傲慢 饥饿 困 流汗 憨笑 悠闲 奋斗 嘘 "
    "疯了 骷髅 敲打 再见 擦汗 抠鼻 鼓掌 糗大了 坏笑 左哼哼 "
    "右哼哼 哈欠 阴险 亲亲 吓 菜刀 西瓜 啤酒 篮球 乒乓 "
    "咖啡 饭 猪头 玫瑰 嘴唇 爱心 蛋糕 闪电 炸弹 刀 足球 "
    "瓢虫 便便 月亮 太阳 礼物 拥抱 强 握手 胜利 抱拳 勾引 "
    "拳头 爱你 no ok 爱情 飞吻 跳跳 发抖 转圈 磕头 "
    "回头 跳绳 投降 激动 乱舞 献吻 左太极 右太极 嘿哈 捂脸 奸笑 "
    "机智 耶 吃瓜 加油 汗 emm 社会社会 旺柴 好的 哇 666 让我看看 合十 福 烟花 爆竹 庆祝 發 鸡 赞 好 鼓励 "
    # the newer set (笑脸 Happy, 脸红 Flushed, 破涕为笑 Lol, 嘿哈 Hey, 吐舌 Tongue)
    "笑脸 脸红 破涕为笑 吐舌 happy flushed lol hey "
    # Weibo's (posts to a brand's help account)
    "抱抱 哈哈 嘻嘻 心 给力 威武 可爱 太开心 馋嘴 花心 围观 笑哈哈 good 互粉 蜡烛 兔子 熊猫 "
    "smile drool coolguy shy silent sleep awkward tongue "
    "grin surprise ruthless blush chuckle joyful slight "
    "smug hungry drowsy panic sweat laugh commando "
    "determined shocked shhh tormented toasted skull hammer "
    "wave nosepick clap shame trick yawn shrunken sly "
    "kiss wrath cleaver watermelon beer basketball pingpong "
    "coffee rice pig rose lips heart cake lightning bomb "
    "dagger soccer ladybug poop moon sun gift hug "
    "thumbsup shake peace fight beckon fist pinky rockon "
    "nuh-uh inlove blowkiss waddle tremble aaagh twirl "
    "kotow dramatic jumprope surrender hooray meditate smooch "
    "taichi facepalm smirk smart yeah! onlooker "
    "goforit sweats respect doge noprob mybad wow "
    "boring awesome letmesee worship blessing fireworks "
    "firecracker rich party chick"
)
# Non-text messages rendered as text: a customer sending these expects a reply.
MEDIA_CODES = _words(
    "图片 语音 视频 文件 链接 位置 名片 小程序 转账 红包 音频 聊天记录 合并转发 "
    "图文 图文消息 视频号 填表 微盘文件 日程 会议 待办 投票 文档 语音通话 音视频通话 "
    "image img photo voice audio video file link location card miniprogram transfer"
)
# Masked personal names in exported or anonymised chats.
NAME_CODES = _words("姓名 名字 人名 name")
# Codes that only stand for a sticker.
STICKER_CODES = _words("表情 动画表情 emotion emoji sticker 贴图 自定义表情 动图 gif")
# Emoji characters that carry a question or displeasure.
# Characters of angry or crying kaomoji ((╬ﾟдﾟ) (｀д′) (╯‵□′)╯): the face is dropped, its mood kept.
NEGATIVE_KAOMOJI = frozenset("╬皿д□")
NEGATIVE_EMOJI = frozenset("❓❔🤔😡😠🤬😤💢😭😢😞😟😰😨🙄👎😒😫😩😣😖😱😓")

# Traditional characters of customers in Hong Kong, Taiwan and abroad (謝謝, 沒有了, 請問還有
# 其他問題嗎), read as the simplified ones the phrases above are written in: the common
# characters of thanks, farewells, questions and orders, one to one.
TRADITIONAL = str.maketrans(
    "謝見沒請問還嗎題個麼這們來對會說時過貨發號單買賣價錢幫給讓應該開關實現後費聯繫電話煩擾處辦訂運遞郵換帳碼"
    "為樣種點幾東壞補務態滿專業細決裡邊讚愛歡樂順週萬聲線網頁圖語視頻連結經畢麽師紅參與舉據慮講係",
    "谢见没请问还吗题个么这们来对会说时过货发号单买卖价钱帮给让应该开关实现后费联系电话烦扰处办订运递邮换账码"
    "为样种点几东坏补务态满专业细决里边赞爱欢乐顺周万声线网页图语视频连结经毕么师红参与举据虑讲系",
)
TRADITIONAL_CHARS = "[" + "".join(map(chr, TRADITIONAL)) + "]"

# Cantonese as customers in Guangdong, Hong Kong and Macau type it (唔該晒, 冇問題, 收到喇, 幾時到呀,
# 點解仲未發貨), read as the Mandarin the phrases above are written in, before the traditional
# characters are: its common words first (唔該 is 劳驾, "much obliged" alone and "would you
# please" before what to do, as in 唔該幫我查下), then its particles, negations and pronouns one
# character for one. Pairs of (pattern, Mandarin), words before characters; the lookarounds
# keep Mandarin words out (喇叭, 关係, 这边, 一点样品, 听日语).
CANTONESE = (
    (r"唔[該该]", "劳驾"),
    # (not in "A 唔 A", 得唔得, 使唔使: the 唔 of those is read as 不, a question)
    (r"(?<![使駛驶洗])唔(?:使|駛|驶|洗)", "不用"),
    (r"(?<![緊紧])唔[緊紧]要", "不要紧"),
    (r"(?<![識识])唔[識识]", "不会"),
    (r"(?<!得)唔得", "不行"),
    (r"有冇", "有没有"),
    (r"[係系]咪", "是不是"),
    (
        r"(?<![重一焦要难難])[點点]解(?![释釋决決答读讀析说說冻凍锁鎖绑綁除压壓封约約套开開码碼题題])",
        "为什么",
    ),
    (r"(?<!一)[點点][樣样](?![品式本板])", "怎样"),
    (r"(?<![一打清])[點点]算(?!盘盤)", "怎么办"),
    (r"[乜咩](?:嘢|野)", "什么"),
    (r"(?<![这這那旁一两兩身左右里裡外上下前后後东東西南北周])[邊边](?=[個个度間间日款])", "哪"),
    (r"仲(?=[未有係系要喺在想可])", "还"),
    (r"[聽听]日(?![语語文本剧劇])", "明天"),
    (r"[遲迟]啲", "晚点"),
    (r"得[閒闲]", "有空"),
    (r"再[傾倾]", "再聊"),
    (r"早唞", "晚安"),
    (r"[係系就][咁噉](?=先|啦|喇|吧|$|\s)", "就这样"),
    (r"[咁噉][樣样]", "这样"),
    (r"好嘢", "太好了"),
    (r"冇(?:嘢|野)", "没事"),
    (r"[諗谂](?:下|吓|諗|谂)", "想想"),
    (r"搞掂", "搞定"),
    (r"喇(?=叭|嘛)", "喇"),
    (r"(?<![關关聯联])係", "是"),
    (r"冇", "没"),
    (r"嘅|㗎", "的"),
    (r"咗", "了"),
    (r"哋", "们"),
    (r"喇", "啦"),
    (r"睇", "看"),
    (r"[諗谂]", "想"),
    (r"喺", "在"),
    (r"啲", "点"),
    (r"唔", "不"),
    (r"[曬哂]", "晒"),
    (r"[俾畀]", "给"),
    (r"[搵揾]", "找"),
    (r"攞", "拿"),
    (r"嚟", "来"),
    (r"佢", "他"),
    (r"[咩乜]", "什么"),
    (r"嘢", "事"),
    (r"[咁噉]", "那"),
    (r"囉", "咯"),
    (r"啩", "吧"),
)
# Text without one of these has none of the words above (a search first: most text has none).
CANTONESE_HINT = (
    r"[唔冇嘅㗎咗哋喇睇諗谂喺啲曬哂俾畀搵揾攞嚟佢咩乜嘢噉咁囉啩係咪仲點邊聽遲唞掂]|"
    r"点[解样算]|边[个度间日款]|[聽听]日|得[閒闲]|再[傾倾]"
)
