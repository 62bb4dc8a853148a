"""Chinese after-sales complaint texts, composed from parts so the wording varies a lot.

A text is ``[opener] core [detail] [intent detail] [personal data] [demand] [closer] [emoji]``,
where ``core`` comes from :data:`INTENT_PHRASES` (the wording that carries the intent)
and every other part is optional. Slots such as ``{days}``, ``{product}`` or ``{hub}``
are filled from the order (category, carrier, region, amount), then the punctuation
style is varied (full-width, ASCII, shouting, none). Personal data (phones, ID numbers,
bank cards, e-mails, names, addresses) is embedded in ``pii_share`` of the texts.

>>> import random
>>> composer = TextComposer(random.Random(3), pii_share=0.0)
>>> text, pii = composer.compose("delivery_delay", category="数码", carrier="中通",
...                              region="广东", amount=899.0)
>>> isinstance(text, str) and len(text) > 8, pii
(True, ())
"""

from __future__ import annotations

import random

from riskwatch.simulator import pii
from riskwatch.simulator.world import PROVINCES

__all__ = ["INTENT_PHRASES", "PRODUCTS", "TextComposer"]

#: The core wording per intent: what a classifier has to recognise. Slots are filled per text.
INTENT_PHRASES: dict[str, tuple[str, ...]] = {
    "delivery_delay": (
        "我的快递已经{days}了还没到，物流一直停在{hub}不动",
        "{carrier}的件{days}都没更新物流了，到底什么时候能送到",
        "买的{product}说好三天到，现在{days}了还在路上",
        "物流信息一直显示运输中，{days}没有任何变化",
        "包裹在{hub}卡了{days}，一点动静都没有",
        "承诺次日达，结果{days}了还没收到{product}",
        "快递太慢了，{days}了还没派送",
        "查物流显示已经到{city}了，但是迟迟不派送",
        "说是今天送达，等了一整天也没见到人",
        "一直显示派送中，人影都没见到，已经{days}了",
        "{product}等了{days}还没到，物流也不更新",
        "发货{days}了物流还停在始发地",
        "快件滞留在{hub}好几天了，你们是爆仓了吗",
        "物流延误严重，预计送达时间都过了{days}",
        "同城的件居然走了{days}，这速度也太离谱了",
    ),
    "pickup_urge": (
        "催件！{product}下单{days}了还没揽收",
        "麻烦催一下，订单显示已发货但一直没有揽件记录",
        "能不能快点派送，明天就要用这个{product}了",
        "催一下我的件，急用，谢谢",
        "已经催了{times}还是没动静，麻烦帮忙加急派送",
        "约了上门取件，快递员{days}都没来",
        "快递到了驿站为什么不送上门，麻烦尽快派送",
        "下单后一直显示待揽收，商家说已经交给{carrier}了",
        "请帮忙联系一下派送员，今天务必送到",
        "包裹已经到{city}了，麻烦今天安排派送",
        "加急！这个{product}是送人的，周末前一定要到",
        "什么时候能派送？一直显示待派送",
    ),
    "lost_parcel": (
        "物流显示已签收，但我根本没收到{product}",
        "快递丢了！{days}前就显示签收，问了门卫和驿站都没有",
        "包裹找不到了，客服说在查，一直没有结果",
        "我的件到了{hub}之后就没有任何记录了，是不是丢件了",
        "快递员说放快递柜了，柜子里根本没有",
        "丢件了谁负责？{amount}的{product}就这么没了",
        "显示已签收，签收人不是我，我也没有授权任何人代收",
        "包裹外箱还在，里面的{product}不见了，内件丢失",
        "物流信息查不到了，件应该是丢了",
        "快递在中转的时候弄丢了，客服让我再等等，等了{days}",
        "驿站说没有这个件，物流却显示已入站",
    ),
    "damaged": (
        "收到的{product}外包装压扁了，里面也坏了",
        "快递暴力分拣，{product}摔坏了",
        "箱子破了个大洞，{product}有明显磕碰",
        "拆开发现{product}已经碎了",
        "包裹被雨水泡了，里面的东西全湿了",
        "外箱完好但里面的{product}碎成好几块",
        "收到的时候已经漏液了，把别的东西都弄脏了",
        "{product}到手就是坏的，明显是运输途中摔的",
        "包装太简陋了，{product}边角全压坏了",
        "冷链没做好，{product}收到已经化了变质了",
        "签收时发现外箱破损，快递员不让开箱验货",
        "{product}运输中被压变形了，根本没法用",
    ),
    "wrong_delivery": (
        "快递送错地址了，送到隔壁小区去了",
        "我收到的根本不是我的包裹，收件人是别人的名字",
        "派送员把我的件放到别人家门口了，现在找不到",
        "地址写的是{city}，结果被送到了别的城市",
        "明明写了送货上门，却被放到了不认识的驿站",
        "快递被别人冒领了，快递员没有核对就给了",
        "送错件了，我买的{product}变成了别人的东西",
        "快递员把我和邻居的件弄混了",
        "派送到了错误的快递柜，取件码也打不开",
    ),
    "fake_shipment": (
        "商家虚假发货！单号{tracking}查不到任何物流信息",
        "显示已发货{days}了，物流一直只有一条已揽收",
        "商家随便填了个单号，查出来是别的城市的件",
        "说是发货了，实际上根本没发，快递公司都查不到这个单号",
        "为了不算超时发货随便上传了单号，物流一直不动",
        "物流{days}没更新，问商家就说在路上，明显是空包",
        "单号是假的，签收地址根本不是我的地址",
        "商家先发个空单号，过了{days}才真正发货",
        "物流显示已签收，可我下单的{product}商家压根没发",
    ),
    "quality": (
        "{product}质量太差了，用了{days}就坏了",
        "收到的{product}和图片严重不符，做工粗糙",
        "怀疑是假货，和专柜买的{product}完全不一样",
        "{product}有一股很重的异味",
        "质量有问题，申请换货商家不理",
        "{product}是二手的吧，有明显使用痕迹",
        "东西是次品，{product}有瑕疵",
        "和描述的不一样，材质很差，一看就是便宜货",
        "{product}用了一次就出问题了，这质量太离谱",
    ),
    "weight_mismatch": (
        "寄件称重明明{weight}，结果按{weight2}收费",
        "运费多收了，实际重量{weight}，计费重量却是{weight2}",
        "快递员没有当面称重，直接按{weight2}收了我{amount}",
        "体积重算得莫名其妙，一个小盒子算成了{weight2}",
        "同样的东西上次寄才十几块，这次收了{amount}",
        "超重费是怎么算的？我自己称了只有{weight}",
        "称重不准，多扣了我运费",
    ),
    "duplicate_charge": (
        "同一笔订单被扣了两次款，一共扣了{amount}",
        "支付的时候卡了一下，结果扣了两次钱",
        "运费重复扣费，账单里有两笔一样的",
        "银行卡显示两笔{amount}的扣款，订单只有一个",
        "付过款了又提示支付失败，重新付了一次，现在被扣了两遍",
        "重复扣款了，麻烦把多扣的钱退给我",
        "一个订单扣了我三次钱，太离谱了",
    ),
    "refund": (
        "申请退款{days}了还没到账",
        "退货已经签收了，退款一直显示处理中",
        "商家同意退款了但钱迟迟没退回来",
        "{amount}的退款到现在还没收到，什么情况",
        "仅退款申请被驳回，理由很不合理",
        "说好退货运费商家承担，结果运费没给我退",
        "订单取消了，钱却没有退",
        "退款退到哪里去了？原路返回也没看到",
        "商家拖着不处理退款申请，一直说在审核",
        "退回的{product}商家说没收到，不给退款",
    ),
    "service_attitude": (
        "快递员态度极差，打电话催了一下就开始骂人",
        "客服一直踢皮球，问什么都说不知道",
        "派送员不打电话直接放驿站，问他还很凶",
        "投诉了{times}都没人处理，客服态度敷衍",
        "快递员让我自己下楼拿，还说爱要不要",
        "客服电话永远打不通，好不容易打通了还被挂断",
        "商家客服说话阴阳怪气，还把我拉黑了",
        "快递员一言不合就挂电话，服务态度太差",
        "在线客服全是机器人回复，转人工也没人理",
    ),
    "customs": (
        "海外直邮的{product}卡在海关{days}了",
        "清关一直不通过，让我补交身份证信息",
        "跨境包裹被海关扣了，要补交税款{amount}",
        "保税仓发货显示清关中，已经{days}没动",
        "清关资料都提交了，还是显示清关异常",
        "海关查验了{days}，到底什么时候放行",
        "跨境购的{product}一直在清关，说是要实名认证",
    ),
    "other": (
        "想问一下发票什么时候能开",
        "能不能帮我修改一下收货地址",
        "会员积分一直没到账",
        "优惠券用不了，下单时提示不可用",
        "想咨询一下保价怎么赔付",
        "APP一直闪退，没法查物流",
        "价保怎么申请？刚买就降价了",
        "想换个颜色，能不能改订单",
        "赠品没有收到",
    ),
}

#: Intent-specific extra clauses (optional second sentence).
INTENT_DETAILS: dict[str, tuple[str, ...]] = {
    "delivery_delay": ("打了{carrier}网点电话也没人接", "每天刷物流都是同一条",
                       "说好的{date}就能到",
                       "问客服只会说在加急", "别人比我晚买的都到了"),
    "pickup_urge": ("这个很急", "周末要出门，没人收", "已经等了一上午", "明天就要用"),
    "lost_parcel": ("监控也查不到", "价值{amount}", "快递柜编号也查过了", "驿站老板说没见过"),
    "damaged": ("已经拍照留证了", "开箱视频都有", "里面一点防护都没有", "快递员签收前不让验货"),
    "wrong_delivery": ("电话也打不通", "地址明明写得很清楚", "问了物业也没人见过"),
    "fake_shipment": ("问商家一直敷衍", "怀疑是刷单的单号", "物流截图都保存了"),
    "quality": ("已经拍照了", "开箱就发现了", "好评返现都是骗人的", "这品控也太差了"),
    "weight_mismatch": ("有称重截图", "快递员态度还很差", "上次同样的东西才收{amount2}"),
    "duplicate_charge": ("有扣款短信", "银行流水可以证明", "支付宝账单里清清楚楚"),
    "refund": ("退货单号{tracking}", "商家已经签收退货", "平台显示退款中"),
    "service_attitude": ("已经录音了", "工号都记下了", "这种服务还做什么快递"),
    "customs": ("身份证照片都上传了", "税费也交了", "说是抽检"),
    "other": ("找了半天没找到入口", "麻烦回复一下"),
}

#: What the customer wants done, per intent.
INTENT_DEMANDS: dict[str, tuple[str, ...]] = {
    "delivery_delay": ("请尽快派送", "给个准确的送达时间", "再不到我就退货了", "麻烦催一下"),
    "pickup_urge": ("请今天安排", "麻烦加急", "尽快揽收"),
    "lost_parcel": ("要求赔偿", "尽快查件给个说法", "要么找到要么赔钱"),
    "damaged": ("要求退款或者补发", "要求赔偿损失", "请安排换货"),
    "wrong_delivery": ("请尽快找回来", "麻烦重新派送", "要求赔偿"),
    "fake_shipment": ("要求商家赔付", "请平台处理这种商家", "要求退款"),
    "quality": ("要求退货退款", "要求换货", "必须给个说法", "要求假一赔三"),
    "weight_mismatch": ("把多收的运费退给我", "要求重新称重", "请核实运费"),
    "duplicate_charge": ("尽快退回多扣的钱", "请核实后退款"),
    "refund": ("请尽快退款", "今天必须到账", "麻烦加快处理"),
    "service_attitude": ("要求道歉", "请处理这个快递员", "希望给个说法"),
    "customs": ("请尽快清关", "告诉我还需要什么材料"),
    "other": ("麻烦告知一下", "谢谢解答"),
}

GENERIC_DEMANDS = ("请尽快处理", "麻烦给个答复", "希望尽快解决", "请给个说法", "尽快回复我")
OPENERS = (
    "你好，", "您好，", "客服你好，", "在吗？", "喂，", "我要投诉！", "投诉！", "麻烦看一下，",
    "真的服了，", "气死我了，", "急！", "实在忍不了了，", "第二次反映了，", "请问一下，",
    "【投诉】", "hello，", "亲，", "我想问下，", "说实话，", "又是这样，", "客服在吗，",
    "第三次联系你们了，", "无语，", "救命，",
)
CLOSERS = (
    "谢谢。", "谢谢！", "再不处理我就打12315了", "差评！", "太失望了", "什么破服务",
    "尽快回复", "等你们回复", "再也不买了", "已经截图留证", "无语了", "辛苦了", "别再拖了",
    "给个痛快话", "希望今天能解决", "不然我就去黑猫投诉", "这体验太差了", "真的很影响心情",
)
EMOJI = ("😡", "😤", "🙄", "😭", "😢", "👎", "🤬", "💢", "😒", "🙏", "😓", "😠", "🥲", "😑")
MIXED = ("wtf", "OMG", "please", "ASAP", "refund!!!", "kuaidi", "so slow", "what???",
         "bad service", "zhen de wu yu", "hurry up", "WTF", "sos", "help", "ok?", "tks")

#: Product nouns by category, for ``{product}``.
PRODUCTS: dict[str, tuple[str, ...]] = {
    "服饰": ("羽绒服", "连衣裙", "卫衣", "牛仔裤", "衬衫", "大衣", "毛衣", "外套"),
    "数码": ("手机", "蓝牙耳机", "平板", "充电宝", "机械键盘", "智能手表", "显示器", "路由器"),
    "美妆": ("口红", "面霜", "精华液", "粉底液", "香水", "面膜", "眼霜"),
    "食品": ("坚果礼盒", "零食大礼包", "牛奶", "咖啡豆", "茶叶", "月饼"),
    "家居": ("四件套", "收纳箱", "台灯", "窗帘", "枕头", "地毯", "餐具"),
    "母婴": ("奶粉", "纸尿裤", "婴儿推车", "奶瓶", "儿童座椅"),
    "生鲜": ("车厘子", "大闸蟹", "牛排", "榴莲", "三文鱼", "草莓", "海鲜礼盒"),
    "图书": ("教材", "绘本", "小说套装", "考研资料"),
    "家电": ("空气炸锅", "扫地机器人", "电饭煲", "洗衣机", "冰箱", "吸尘器", "电视"),
    "运动": ("瑜伽垫", "跑鞋", "哑铃", "羽毛球拍", "骑行服"),
    "宠物": ("猫粮", "狗粮", "猫砂", "宠物窝"),
}
# Extra quality wording that only makes sense for one category.
_QUALITY_BY_CATEGORY: dict[str, tuple[str, ...]] = {
    "服饰": ("衣服线头很多，洗一次就掉色起球", "尺码严重偏小，面料也很差", "鞋子穿了两天就开胶了"),
    "美妆": ("用了之后脸上过敏起红疹", "包装没有防伪码，怀疑是假货", "膏体颜色和官网的不一样"),
    "食品": ("收到的已经过期了", "里面吃出了异物", "生产日期是半年前的"),
    "数码": ("开机没几天就黑屏", "充不进电，电池鼓包了", "屏幕有坏点，还是翻新机"),
    "生鲜": ("一半都是烂的", "个头比宣传的小太多", "闻着就不新鲜"),
    "母婴": ("奶粉罐有凹陷，担心有问题", "宝宝用了起红疹"),
}
_CN_DIGITS = "零一两三四五六七八九十"
_HUB_WORDS = ("转运中心", "分拨中心", "集散中心", "中转场")
_DAY_WORDS = ("快一个星期", "一个多星期", "整整一周", "好多天", "半个月")
_STYLES = ("full", "full", "full", "ascii", "shout", "flat")


def _days(rng: random.Random) -> str:
    n = rng.randint(2, 9)
    roll = rng.random()
    if roll < 0.45:
        return f"{n}天"
    if roll < 0.75:
        return f"{_CN_DIGITS[n]}天"
    if roll < 0.85:
        return f"整整{n}天"
    return rng.choice(_DAY_WORDS)


def _amount(rng: random.Random, amount: float) -> str:
    roll = rng.random()
    if roll < 0.4:
        return f"{amount:.0f}元"
    if roll < 0.7:
        return f"¥{amount:.2f}"
    if roll < 0.85:
        return f"{amount:.0f}块"
    return f"{amount:.1f}元"


def _weight(rng: random.Random) -> tuple[str, str]:
    real = rng.choice((0.5, 1, 1.2, 1.5, 2, 2.5, 3, 4, 5))
    billed = real + rng.choice((1, 2, 3, 5, 8))
    unit = rng.choice(("公斤", "kg", "斤"))
    fmt = lambda v: f"{v:g}{unit}"  # noqa: E731
    return fmt(real), fmt(billed)


class _Slots(dict):
    """Slot values computed only when a template asks for them."""

    def __init__(self, makers: dict) -> None:
        super().__init__()
        self._makers = makers

    def __missing__(self, key: str) -> str:
        value = self[key] = self._makers[key]()
        return value


class TextComposer:
    """Compose complaint texts with one :class:`random.Random` (deterministic per seed).

    Parameters
    ----------
    rng
        The source of randomness; the composer never touches a global RNG.
    pii_share
        Probability that a text embeds personal data.
    """

    def __init__(self, rng: random.Random, pii_share: float) -> None:
        self._rng = rng
        self._pii_share = pii_share
        self._hubs = {p.name: p.hubs for p in PROVINCES}

    def compose(self, intent: str, *, category: str, carrier: str | None, region: str,
                amount: float) -> tuple[str, tuple[str, ...]]:
        """One complaint text and the kinds of personal data embedded in it.

        The kinds are among ``mobile, id_number, bank_card, email, address, name``.
        """
        rng = self._rng
        hubs = self._hubs.get(region, ("上海",))
        weights = _weight(rng) if intent == "weight_mismatch" else ("1kg", "3kg")
        slots = _Slots({
            "days": lambda: _days(rng),
            "hub": lambda: rng.choice(hubs) + rng.choice(_HUB_WORDS),
            "city": lambda: rng.choice(hubs),
            "carrier": lambda: carrier or rng.choice(("快递", "物流", "快递公司")),
            "product": lambda: rng.choice(PRODUCTS.get(category, ("东西",))),
            "amount": lambda: _amount(rng, amount),
            "amount2": lambda: _amount(rng, max(5.0, amount * rng.uniform(0.3, 0.7))),
            "tracking": lambda: pii.tracking_number(rng, carrier),
            "times": lambda: rng.choice(("两次", "三次", "好几次", "3次", "N次")),
            "date": lambda: rng.choice(("前天", "上周", "大前天", "上个周末", "昨天一早",
                                        f"{rng.randint(1, 28)}号")),
            "weight": lambda: weights[0],
            "weight2": lambda: weights[1],
        })
        phrases = INTENT_PHRASES[intent]
        if intent == "quality" and category in _QUALITY_BY_CATEGORY and rng.random() < 0.4:
            phrases = _QUALITY_BY_CATEGORY[category]
        parts: list[str] = []
        if rng.random() < 0.55:
            parts.append(rng.choice(OPENERS))
        parts.append(rng.choice(phrases).format_map(slots))
        if rng.random() < 0.35:
            parts.append(self._reference(slots))
        if rng.random() < 0.35:
            parts.append(rng.choice(INTENT_DETAILS[intent]).format_map(slots))
        kinds: tuple[str, ...] = ()
        if rng.random() < self._pii_share:
            sentence, kinds = self._personal_data(intent)
            parts.append(sentence)
        if rng.random() < 0.6:
            pool = INTENT_DEMANDS[intent] if rng.random() < 0.7 else GENERIC_DEMANDS
            parts.append(rng.choice(pool))
        if rng.random() < 0.45:
            parts.append(rng.choice(CLOSERS))
        text = self._punctuate(parts)
        if rng.random() < 0.08:
            mixed = rng.choice(MIXED)
            text = f"{mixed} {text}" if rng.random() < 0.4 else f"{text} {mixed}"
        if rng.random() < 0.15:
            text += rng.choice(EMOJI) * rng.choice((1, 1, 2, 3))
        return text, kinds

    def _reference(self, slots: _Slots) -> str:
        """Order/tracking references: long digit strings that are *not* personal data."""
        rng = self._rng
        roll = rng.random()
        if roll < 0.35:
            return rng.choice(("订单号", "订单编号：", "订单号是", "单号")) + pii.order_number(rng)
        if roll < 0.65:
            return rng.choice(("运单号", "快递单号：", "物流单号")) + slots["tracking"]
        if roll < 0.85:
            return f"{slots['date']}下的单，花了{slots['amount']}"
        return f"订单尾号{rng.randint(0, 9999):04d}"

    def _personal_data(self, intent: str) -> tuple[str, tuple[str, ...]]:
        """One or two sentences with personal data; always at least one structured item."""
        rng = self._rng
        # What people paste depends on the problem: ID numbers for customs clearance,
        # card numbers for money problems, phones and addresses for everything else.
        first = rng.choices(
            ("mobile", "id_number", "bank_card", "email", "address"),
            weights=(
                5,
                6 if intent == "customs" else 1,
                4 if intent in ("refund", "duplicate_charge", "weight_mismatch") else 0.7,
                1,
                3 if intent in ("wrong_delivery", "lost_parcel", "pickup_urge") else 2,
            ),
        )[0]
        kinds = [first]
        if rng.random() < 0.35:
            kinds.append(rng.choice(("name", "mobile", "address", "email")))
        sentences = []
        for kind in dict.fromkeys(kinds):
            sentences.append(self._pii_sentence(kind))
        return "，".join(sentences), tuple(dict.fromkeys(kinds))

    def _pii_sentence(self, kind: str) -> str:
        rng = self._rng
        if kind == "mobile":
            cue = rng.choice(("我的电话是", "联系我", "手机", "电话：", "有事打", "回电"))
            return cue + pii.mobile(rng)
        if kind == "id_number":
            cue = rng.choice(("身份证号", "我的身份证号码是", "证件号：", "身份证"))
            return cue + pii.id_number(rng)
        if kind == "bank_card":
            cue = rng.choice(("退到我的卡", "银行卡号：", "我的卡号是", "扣款卡号"))
            return cue + pii.bank_card(rng)
        if kind == "email":
            return rng.choice(("邮箱", "请发邮件到", "我的邮箱是", "email: ")) + pii.email(rng)
        if kind == "address":
            return rng.choice(("地址是", "收货地址：", "我的地址", "送到")) + pii.full_address(rng)
        name = pii.chinese_name(rng)
        # after a cue word, and as people write about couriers and family
        return rng.choice((f"我是{name}", f"收件人{name}", f"我叫{name}", f"找{name}",
                           f"快递员叫{name}", f"寄给{name}的", f"我老公{name}在家等着",
                           f"收件人是我妈{name}"))

    def _punctuate(self, parts: list[str]) -> str:
        rng = self._rng
        style = rng.choice(_STYLES)
        text = parts[0]
        for part in parts[1:]:
            if text.endswith(("，", "？", "！", "。", "】", " ")):
                text += part
            else:
                text += rng.choice(("，", "，", "。", "！", "，")) + part
        if not text.endswith(("。", "！", "？")) and rng.random() < 0.6:
            text += rng.choice(("。", "！", "！！", "？", "...", "!!!"))
        if style == "ascii":
            text = text.translate(_TO_ASCII)
        elif style == "shout":
            text = text.replace("！", "！！！").replace("。", "！")
        elif style == "flat":
            text = text.replace("，", " ").replace("。", " ").strip()
        return text


_TO_ASCII = str.maketrans({"，": ",", "！": "!", "？": "?", "：": ":"})
