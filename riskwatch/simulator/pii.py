"""Synthetic personal data for complaint texts, valid enough to exercise a real masker.

Mobile numbers use real mainland prefixes in five spellings; resident ID numbers carry a
valid GB 11643-1999 check digit (including ``X``); bank cards start with UnionPay ``62``
BINs and pass the Luhn check. Next to them the texts carry *harmless* long digit strings
(order numbers that fail Luhn, tracking numbers such as ``SF1234567890123``) so a masker
can be tested for false positives too. All values are random: none belongs to anyone.

>>> id_check_digit("11010519491231002")
'X'
>>> luhn_valid("6222021234567890128"), luhn_valid("6222021234567890127")
(True, False)
>>> luhn_valid(with_luhn_digit("622202123456789012"))
True
"""

from __future__ import annotations

import random

__all__ = [
    "bank_card",
    "chinese_name",
    "email",
    "full_address",
    "id_check_digit",
    "id_number",
    "id_number_valid",
    "luhn_valid",
    "mobile",
    "order_number",
    "tracking_number",
    "with_luhn_digit",
]

_MOBILE_PREFIXES = (
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "147", "150", "151",
    "152", "153", "155", "156", "157", "158", "159", "166", "173", "176", "177", "178",
    "180", "181", "182", "183", "185", "186", "187", "188", "189", "191", "193", "195",
    "198", "199",
)
_FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")

# Six-digit administrative division codes (real districts) for ID numbers.
_ID_AREAS = (
    "110101", "110105", "110108", "310104", "310115", "440305", "440106", "440304",
    "330106", "330102", "320102", "320505", "510107", "420106", "370202", "350203",
    "410105", "430104", "500103", "610113", "340104", "130102", "210102", "120101",
)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

# UnionPay BINs of big banks (ICBC, CCB, ABC, CMB, BOC, BoCom, PSBC).
_CARD_BINS = ("622202", "621700", "622848", "621483", "621661", "622588", "621226",
              "622260", "621799", "622700")

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
GIVEN_NAMES = (
    "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰",
    "娟", "涛", "明", "超", "秀兰", "霞", "平", "刚", "桂英", "晓燕", "建华", "志强",
    "婷婷", "子涵", "浩然", "欣怡", "雨轩", "梓萱", "宇航", "佳怡", "思远", "一鸣",
)
_PINYIN = ("wang", "li", "zhang", "liu", "chen", "yang", "huang", "zhao", "wu", "zhou",
           "xu", "sun", "ma", "zhu", "hu", "guo", "lin", "luo", "xiaoyu", "tingting")
_MAIL_DOMAINS = ("qq.com", "163.com", "126.com", "gmail.com", "foxmail.com", "sina.com",
                 "outlook.com", "139.com")

# province prefix, city, districts, streets (街道), roads (路/街/大道)
_CITIES = (
    ("广东省", "深圳市", ("南山区", "福田区", "宝安区", "龙岗区"),
     ("粤海街道", "沙河街道", "新安街道"),
     ("科技南十二路", "深南大道", "创业路", "南海大道")),
    ("广东省", "广州市", ("天河区", "海珠区", "白云区", "番禺区"),
     ("石牌街道", "江南中街道", "三元里街道"),
     ("天河路", "中山大道", "江南大道", "广州大道北")),
    ("浙江省", "杭州市", ("西湖区", "余杭区", "滨江区", "拱墅区"),
     ("文新街道", "五常街道", "西兴街道"),
     ("文一西路", "古墩路", "江南大道", "莫干山路")),
    ("江苏省", "南京市", ("鼓楼区", "玄武区", "江宁区"), ("湖南路街道", "孝陵卫街道", "东山街道"),
     ("中山路", "北京东路", "双龙大道")),
    ("江苏省", "苏州市", ("姑苏区", "工业园区", "吴中区"), ("平江街道", "娄葑街道", "长桥街道"),
     ("干将路", "星湖街", "东环路")),
    ("", "上海市", ("浦东新区", "徐汇区", "闵行区", "杨浦区"), ("花木街道", "田林街道", "莘庄镇"),
     ("世纪大道", "漕溪北路", "莲花路", "国定路")),
    ("", "北京市", ("朝阳区", "海淀区", "丰台区", "西城区"), ("望京街道", "中关村街道", "方庄街道"),
     ("阜通东大街", "中关村大街", "蒲黄榆路", "西直门内大街")),
    ("四川省", "成都市", ("武侯区", "锦江区", "高新区"), ("红牌楼街道", "春熙路街道", "桂溪街道"),
     ("武侯祠大街", "天府大道", "红星路")),
    ("湖北省", "武汉市", ("洪山区", "江汉区", "武昌区"), ("关山街道", "民族街道", "中南路街道"),
     ("珞喻路", "解放大道", "武珞路")),
    ("山东省", "青岛市", ("市南区", "崂山区", "黄岛区"), ("八大关街道", "中韩街道", "长江路街道"),
     ("香港中路", "海尔路", "长江中路")),
    ("河南省", "郑州市", ("金水区", "中原区", "二七区"), ("花园路街道", "林山寨街道", "建中街街道"),
     ("花园路", "建设西路", "大学路")),
    ("福建省", "厦门市", ("思明区", "湖里区"), ("鹭江街道", "金山街道"),
     ("中山路", "湖里大道")),
)
_ESTATES = ("阳光花园", "翠苑小区", "幸福里", "金地名都", "万科城", "保利花园", "碧桂园", "华润城",
            "龙湖天街", "绿地新都会", "锦绣江南", "东方明珠苑", "和谐家园", "")


def id_check_digit(first17: str) -> str:
    """GB 11643-1999 check character for the first 17 digits of a resident ID number."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS))
    return _ID_CHECK[total % 11]


def id_number_valid(number: str) -> bool:
    """True for an 18-character resident ID number whose check character is right."""
    return (len(number) == 18 and number[:17].isdigit()
            and id_check_digit(number[:17]) == number[17].upper())


def luhn_valid(number: str) -> bool:
    """True if a digit string passes the Luhn (mod 10) check."""
    if not number.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def with_luhn_digit(body: str) -> str:
    """Append the digit that makes ``body`` pass the Luhn check."""
    for d in "0123456789":
        if luhn_valid(body + d):
            return body + d
    raise AssertionError("unreachable")  # one of ten digits always works


def mobile(rng: random.Random) -> str:
    """A mainland mobile number in one of the spellings people actually type."""
    number = rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"
    style = rng.random()
    if style < 0.50:
        return number
    if style < 0.62:
        return f"{number[:3]} {number[3:7]} {number[7:]}"
    if style < 0.74:
        return f"{number[:3]}-{number[3:7]}-{number[7:]}"
    if style < 0.86:
        return rng.choice(("+86 ", "+86-", "+86", "86-")) + number
    return number.translate(_FULLWIDTH)


def id_number(rng: random.Random) -> str:
    """An 18-digit resident ID number with a valid birth date and check digit."""
    year = rng.randint(1955, 2006)
    month = rng.randint(1, 12)
    day = rng.randint(1, 28)
    body = f"{rng.choice(_ID_AREAS)}{year:04d}{month:02d}{day:02d}{rng.randrange(1000):03d}"
    check = id_check_digit(body)
    # People often type the check character in lower case.
    if check == "X" and rng.random() < 0.2:
        check = "x"
    return body + check


def bank_card(rng: random.Random) -> str:
    """A UnionPay card number (16 or 19 digits) passing Luhn, sometimes grouped by 4."""
    length = 19 if rng.random() < 0.7 else 16
    bin_ = rng.choice(_CARD_BINS)
    body = bin_ + "".join(rng.choice("0123456789") for _ in range(length - len(bin_) - 1))
    number = with_luhn_digit(body)
    if rng.random() < 0.3:
        return " ".join(number[i:i + 4] for i in range(0, len(number), 4))
    return number


def chinese_name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + rng.choice(GIVEN_NAMES)


def email(rng: random.Random) -> str:
    domain = rng.choice(_MAIL_DOMAINS)
    if domain == "qq.com" and rng.random() < 0.6:
        return f"{rng.randint(10**7, 10**10)}@qq.com"
    sep = rng.choice(("", ".", "_"))
    return f"{rng.choice(_PINYIN)}{sep}{rng.choice(_PINYIN)}{rng.randint(1, 9999)}@{domain}"


def full_address(rng: random.Random) -> str:
    """A full street address down to the flat: 省/市/区/街道/路/号/栋/单元/室."""
    province, city, districts, streets, roads = rng.choice(_CITIES)
    estate = rng.choice(_ESTATES)
    flat = f"{rng.randint(1, 32)}{rng.randint(1, 4):02d}室"
    return (f"{province}{city}{rng.choice(districts)}{rng.choice(streets)}{rng.choice(roads)}"
            f"{rng.randint(1, 999)}号{estate}{rng.randint(1, 30)}栋{rng.randint(1, 6)}单元{flat}")


def order_number(rng: random.Random) -> str:
    """A 19-digit platform order number: long digits that are *not* personal data.

    Starts with 2-4 (no UnionPay prefix) and is forced to fail Luhn, so a correct card
    detector leaves it alone.
    """
    body = str(rng.randint(2, 4)) + "".join(rng.choice("0123456789") for _ in range(17))
    good = with_luhn_digit(body)[-1]
    return body + str((int(good) + rng.randint(1, 9)) % 10)


def tracking_number(rng: random.Random, carrier: str | None) -> str:
    """A tracking number in the carrier's usual shape (``SF1234567890123``, ``YT...``)."""
    digits = lambda n: "".join(rng.choice("0123456789") for _ in range(n))  # noqa: E731
    if carrier == "顺丰":
        return "SF" + digits(13)
    if carrier == "圆通":
        return "YT" + digits(13)
    if carrier == "极兔":
        return "JT" + digits(13)
    if carrier == "京东物流":
        return "JDVA" + digits(11)
    if carrier == "中通":
        return "7" + digits(13)
    if carrier == "韵达":
        return "43" + digits(11)
    if carrier == "申通":
        return "77" + digits(11)
    # EMS numbers start with 1 and are 13 digits: a trap for a lazy phone regex.
    return "11" + digits(11)
