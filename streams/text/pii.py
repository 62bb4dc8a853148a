"""Find and mask personal data in Chinese complaint texts.

Every complaint passes through :func:`mask_pii` before it reaches a table, a log line, an
alert or a dead letter. The masker is rule based and errs on the side of masking:

========  ===========================================================  ====================
kind      what is recognised                                           masked as
========  ===========================================================  ====================
mobile    mainland mobile ``1[3-9]`` + 9 digits; spaces, tabs, dashes   ``138****5678``
          (also ``—``, ``‐``), ``~``, ``、``, ``·``, dots, slashes, single
          spaced digits, ``+86``/``86``/``0086`` prefix, full-width digits,
          Chinese numerals (幺三八…, 壹叁捌…, 138一二三四5678)
id        18-character resident ID (GB 11643): valid birth date and     ``110***********1234``
          either a valid check digit or a valid province code; 15-digit
          legacy IDs (province + 19YYMMDD); anything ID-shaped after
          身份证/证件号, in Chinese numerals too
card      16-19 digits passing Luhn with a card-like first digit        ``6222 **** **** 1234``
          (3-6, 9), alone or grouped by spaces/dashes; anything
          16-19 digits after 卡号/银行卡/card
landline  area code + 7-8 digits: ``0755-12345678``, ``021 6123 4567``,   ``0755-****5678``
          ``(0755)12345678``, ``075587654321``, ``+86-755-12345678``,
          dotted ``0755.1234.5678``, ``010.87654321``, ``+86.755.1234.5678``
          (not 12.50, 2026.11.25, 86.755)
email     ``local@domain.tld``, also ``local (at) domain.tld``,           ``z***@example.com``
          ``local#domain.tld``, ``local @ 163 . com``, ``… at qq dot com``
address   from the street/road/house number/building/unit/room on, the  ``广东省深圳市南山区***``
          building and room after a house number included; province,
          city and district are kept
name      a name after 收件人/代收人/联系人/姓名/我叫/名叫/name …     ``张*``
          (in brackets or quotes too, and one joined by 和/、), or after
          我是/找/联系 when the name stands alone (``找田伟！``); after a
          role or relation (快递员/骑手/客服/店主 …, 我老公/我妈 …) or
          寄给/交给/转告/请联系 …; before 你好/先生/女士/同学/签收/冒领;
          after 给 before 打电话/发消息; after 我姓X, a name starting
          with X; a name found once, wherever it recurs. Not a surname
          with a title (王先生, 李经理)
passport  a passport / travel permit number after 护照/通行证/passport     ``E*****678``
========  ===========================================================  ====================

What is deliberately *not* masked: tracking and order numbers glued to letters
(``SF1234567890123``, ``YT…``, ``JDVA…``), amounts (``299.00元``), decimals, dates and
times, hotlines (12315, 95338, 400-…), and long digit-only order ids that are neither an
ID nor a card, such as ``202611021234567890`` (no valid birth date at digits 7-14, starts
with 2). The price of erring on the side of masking: a random 18-digit id has about a
0.05% chance to look like an ID, and a random 16-19 digit id starting with 3-6 or 9 a 10%
chance to pass Luhn and be masked as a card (after 订单号/单号 only ``62…`` UnionPay
numbers count). Such ids lose their middle digits; no personal number survives.

Decisions on IDs: an 18-character number counts when digits 7-14 are a valid birth date
(1900-2099) *and* either the GB 11643 check character or the province code is right, so a
typo outside the date is still masked, while ``202611021234567890`` (no date, no
province) is not. After 身份证/证件号 anything of 15-18 characters is masked.

Names with none of these around them ("张伟说今天送到") and addresses without a house
number, building, unit or room are not found: that needs a named-entity model. Dead
letters therefore drop free text altogether rather than rely on this module. The role
words are followed by ordinary words far more often than by names; those that start with
a surname character are listed in ``NOT_NAMES`` ("快递员张口就骂", "客服高速回复") and
checked against 3,000 simulator texts and 73 hand-written ones in ``tests/text/test_pii.py``.

Input is folded with a length-preserving map (full-width ASCII and the ideographic space
become ASCII), so spans found on the folded text index the original text.

Cost per 40-80 character complaint on the project's shared 2-core VM (while it ran
``sum(range(1000))`` in ~30 us, about 3x a current laptop): ~14 us without personal
data, ~75 us with (masked text with a name or address is searched a second time), ~22 us
for a 90/10 mix. Every regex starts with a character class or is gated by a cheap test,
and the work is linear in the text length.

Examples
--------
>>> mask_pii("收件人张三，电话 +86 138-1234-5678，地址广东省深圳市南山区科技园南路88号3栋501室")
'收件人张*，电话 +86 138****5678，地址广东省深圳市南山区***'
>>> mask_pii("单号SF1234567890123，订单202611021234567890，金额299.00元，已打12315")
'单号SF1234567890123，订单202611021234567890，金额299.00元，已打12315'
>>> [(s.kind, s.start, s.end) for s in find_pii("退款到6222021234567890128，邮箱a.b@qq.com")]
[('card', 3, 22), ('email', 25, 35)]
>>> contains_unmasked_pii(mask_pii("身份证11010519491231002X"))
False
>>> len(pseudonymise("13812345678", key=b"k"))
32
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterator
from typing import NamedTuple

from streams.text.lexicon import COMPOUND_SURNAMES, NAME_STOP_CHARS, NOT_NAMES, SURNAMES

__all__ = [
    "PiiSpan",
    "SCANNED_KINDS",
    "contains_unmasked_pii",
    "evaluate_masker",
    "find_pii",
    "mask_pii",
    "pseudonymise",
]

#: Kinds :func:`contains_unmasked_pii` looks for: the ones regexes find reliably.
SCANNED_KINDS: frozenset[str] = frozenset({"card", "id", "mobile"})


class PiiSpan(NamedTuple):
    """One piece of personal data: ``text[start:end]`` is of ``kind``."""

    kind: str
    start: int
    end: int


# --- normalisation ---------------------------------------------------------------------
# Full-width ASCII (U+FF01-FF5E) and the ideographic space map one-to-one onto ASCII, so
# offsets stay valid. NFKC would also fold these but can change the text's length.
_FOLD = {0xFF01 + i: 0x21 + i for i in range(94)} | {0x3000: 0x20}
# Only full-width digits, letters, @ and dashes matter to the detectors; Chinese
# punctuation (，：) is full-width too and must not trigger a fold of every text.
_NEEDS_FOLD = re.compile("[０-９Ａ-Ｚａ-ｚ＠－＋．／\u3000]")

# --- digit-based kinds ---------------------------------------------------------------------
# One scan finds every maximal run of digits (groups joined by a dash or one or two
# spaces, optionally ending in X, even when digits follow: an ID's check letter ends its
# run, "…1002X13812345678" is an ID and a phone); each run of >= 7 digits is then
# classified in Python.
# Runs are classified whole, never by sliding windows: an 11-digit window inside an
# 18-digit ID or a card must not be read as a phone number, nor may the fraction of a
# decimal (0.13812345678). The pattern starts with a character class so that the regex
# engine skips ahead to the next digit quickly.
# Groups are joined by dashes (as typed by Chinese IMEs too, and the Unicode hyphens and
# minus that copy-paste brings), a tilde, an enumeration comma or a middle dot, each
# with spaces around or not, or by one to three spaces, tabs or no-break spaces. (A dot
# or a slash joins groups only in the shapes below: elsewhere it is a decimal or a date.)
_SPACE = "[ \t\u00a0]"
_SEP = rf"(?:{_SPACE}{{0,3}}[-—–_~～\u2010\u2011\u2212、·・]{_SPACE}{{0,3}}|{_SPACE}{{1,3}})"
_RUN = re.compile(rf"[+0-9][0-9]*(?:{_SEP}[0-9]+)*(?:[Xx](?![A-Za-z]))?")
_MIN_DIGITS = 7
_GROUP = re.compile(r"[0-9]+[Xx]?")
_DIGIT = re.compile(r"[0-9０-９]")
_LONG_DIGITS = re.compile(r"[0-9]{7,}")
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
# A dot or a slash only separates groups of a phone written 138.1234.5678 or 138/1234/5678
# (3-4-4, optionally spaced), or of a landline after a real area code (010, 02x, 0[3-9]xx:
# a decimal or an amount never starts with 0 and a digit) then 3-4 + 4 digits or 7-8 in
# one group: 0755.1234.5678, 010.8765.4321, 0755.12345678; elsewhere it is a decimal, a
# date (2026/11/24, 2026.11.25), a version (1.2.3), an IP address or a ratio. One pass for
# both (group 1 a mobile, group 2 a landline), on texts with a dot or a slash only; it
# starts with a character class, so the scan skips to the next 0 or 1 quickly.
_DOTTED_PHONE = re.compile(
    r"[01](?<![0-9./][01])(?:(?<=1)([3-9][0-9] ?[./] ?[0-9]{4} ?[./] ?[0-9]{4})"
    r"|(?<=0)((?:10|2[0-9]|[3-9][0-9]{2}) ?[./] ?(?:[0-9]{3,4} ?[./] ?[0-9]{4}|[0-9]{7,8})))"
    r"(?![0-9]|[./][0-9])")
# ... and both after the country code, +86 or 0086, where the area code drops its 0:
# +86.755.1234.5678, 0086.10.8765.4321, +86.138.1234.5678, 86.755.1234.5678 (group 1 a
# mobile, group 2 a landline). 86.755 alone is a decimal: only the whole shape counts.
_DOTTED_ABROAD = re.compile(
    r"(?<![0-9A-Za-z+./])(?:\+|00)?86(?: ?[./] ?| ?-? ?)(?:(1[3-9][0-9] ?[./] ?[0-9]{4} ?[./] ?[0-9]{4})"
    r"|((?:10|2[0-9]|[3-9][0-9]{2}) ?[./] ?(?:[0-9]{3,4} ?[./] ?[0-9]{4}|[0-9]{7,8})))"
    r"(?![0-9]|[./][0-9])")
# ... or a card or an ID written in dotted groups of four (6222.0212.3456.7890.128),
# classified like any other run.
_DOTTED_GROUPS = re.compile(
    r"(?<![0-9./])[0-9]{4}(?: ?[./] ?[0-9]{4}){2,3} ?[./] ?[0-9]{1,4}[Xx]?(?![0-9]|[./][0-9])")
# Letters glued in front of digits make a code (SF…, YT…, JDVA…), unless they say "phone".
_PHONE_WORDS = frozenset({"tel", "phone", "mobile", "mob", "cell", "call", "sms", "wx", "vx",
                          "wxid", "wechat", "weixin", "whatsapp", "dh", "sj"})
_LETTERS_BEFORE = re.compile(r"[A-Za-z]+$")
_ESCAPE_BEFORE = re.compile(r"\\(?:u[0-9a-fA-F]{4}|[nrtbf])$")
# The nearest cue in the few characters before a run decides how generous to be.
_ORDER_WORDS = r"订单|单号|运单|工单|快递单|交易号|流水号|[Oo]rder|[Tt]racking"
_CUE = re.compile(
    r"(身份证|证件号|身份号码|[Ii][Dd] ?[Cc]ard)"
    r"|(卡号|银行卡|储蓄卡|信用卡|借记卡|卡|[Cc]ard|账号|账户)"
    rf"|({_ORDER_WORDS})"
)
_CUE_WINDOW = 12
# An order cue right before a number (only separators between): "交易号：4200…", not the
# "…是订单号，麻烦回电138…" whose cue names the number before it.
_ORDER_CUE_JUST_BEFORE = re.compile(rf"(?:{_ORDER_WORDS})(?:号|编号|[Nn]o\.?|ID|id)?[\s:：#是为]*$")
# GB/T 2260 province codes (+83 Taiwan residence permits, +91 foreigners' permanent residence).
_PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 "
    "61 62 63 64 65 71 81 82 83 91".split()
)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# Amex/JCB 3, Visa 4, Mastercard 5, UnionPay 6, Chinese domestic 9. Mastercard's 2221-2720
# range is left out on purpose: it is rare here and every date-stamped order id (2026…)
# would fall into it.
_CARD_FIRST = frozenset("34569")
_LANDLINE = re.compile(r"0[1-9][0-9]{1,2}")
# An area code in brackets: (0755)12345678, （021）6123-4567, (0755).1234.5678.
_BRACKET_LANDLINE = re.compile(
    r"[(（] ?0[1-9][0-9]{1,2} ?[)）][ .\-]?[0-9]{3,4}[ .\-]?[0-9]{4}(?![0-9])")
# The area code of a masked landline, as kept: 010 and 02x have three digits, others four.
_AREA_CODE = re.compile(r"\(?(0(?:[12][0-9]|[3-9][0-9]{2}))")
_ABROAD_AREA = re.compile(r"\+?(?:00)?86(?: ?[./] ?|[ \-])?\(?([1-9][0-9]{1,2})")

# Mobile numbers spelt in Chinese numerals, a common way to dodge filters.
_CN_NUMERALS = "〇零一二三四五六七八九幺两壹贰叁肆伍陆柒捌玖"
_CN_DIGITS = str.maketrans(_CN_NUMERALS, "0012345678912123456789")
# Numerals and digits may be mixed (138一二三四5678) and groups split by commas too
# (一三八，一二三四，五六七八); a match must hold a numeral (digits alone are runs).
_CN_SEP = "[ \\-，,、~·.]"
_CN_MOBILE = re.compile(
    rf"[一幺壹1]{_CN_SEP}?[三四五六七八九叁肆伍陆柒捌玖3-9](?:{_CN_SEP}?[{_CN_NUMERALS}0-9]){{9}}")
_ANY_CN_NUMERAL = re.compile(f"[{_CN_NUMERALS}]")
# ... and an ID number spelt in numerals, after its cue word (身份证四四零三零五…X).
_CN_ID = re.compile(rf"(?:身份证|证件号)(?:号码|号)?[:：是为 ]*([{_CN_NUMERALS}0-9]{{14,17}}[{_CN_NUMERALS}0-9Xx])"
                    rf"(?![{_CN_NUMERALS}0-9])")

# Passport / travel permit numbers are only recognised after their cue word.
_PASSPORT = re.compile(r"(?:护照|通行证|[Pp]assport)\s?(?:号码|号|[Nn]o\.?)?(?:[:：是为]|\s)*"
                       r"([A-Za-z]{1,2}[0-9]{7,9})(?![0-9A-Za-z])")

# also "name (at) qq.com", "name @ 163 . com", "name#qq.com" (# for @ keeps crawlers
# off) and "qq。com", as people write to dodge spam filters; "name at qq dot com" only
# with a common top-level domain (in words it could be English prose).
_AT = re.compile(r" ?(?:@|#|\(at\)|\[at\]) ?| (?:at|AT) ")
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*"
                    r" ?(?:@|#|\(at\)|\[at\]) ?"
                    r"[A-Za-z0-9-]+(?: ?[.。] ?[A-Za-z0-9-]+)* ?[.。] ?[A-Za-z]{2,}"
                    r"|(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]* (?:at|AT) "
                    r"[A-Za-z0-9-]+(?: (?:dot|DOT) [A-Za-z0-9-]+)* (?:dot|DOT) "
                    r"(?:com|cn|net|org|edu|gov|hk|cc|me|io|top|vip)(?![A-Za-z])")

# --- addresses -----------------------------------------------------------------------------
# An address is only masked around a detail anchor: road + number, building, unit, room,
# village group, or community + dashed number. "3号" alone is a date, "5楼" a floor.
_NUM = "0-9A-Za-z一二三四五六七八九十百零〇"
_ADDR_ANCHOR = re.compile(
    rf"(?:(?:路|街|大道|巷|弄|胡同)(?:[一二三四五六七八九十0-9]{{1,2}}段|[东西南北中]段)?"
    rf"[{_NUM}\-]{{1,6}}(?:号|弄)"
    r"|[0-9A-Za-z一二三四五六七八九十]{1,4}(?:号楼|号院|栋|幢|座|单元|楼[0-9一二三四五六七八九十]{1,2}门)"
    r"|[0-9]{2,5}(?:室|房|户)"
    r"|村[0-9一二三四五六七八九十]{1,3}组"
    r"|(?:小区|园|公寓|大厦|家园|新村|社区|苑|广场|大楼|宿舍)"
    r"[0-9A-Za-z]{1,4}(?:-[0-9]{1,4}){1,3})"
)
# Every anchor ends in one of these (or in a dashed number after a community word), so
# the costly anchor regex only runs on a short window before each such character.
_ADDR_SUFFIX = re.compile(r"[号弄栋幢座元室房户组门]|[区园寓厦村苑场楼舍][0-9A-Za-z]{1,4}-[0-9]")
_ANCHOR_REACH = 16
# (after a space only a short number: "B座 1203", not "501室 bad service" or a phone)
_ADDR_TAIL = re.compile(
    r"(?:[0-9A-Za-z\-#]+| [0-9][0-9A-Za-z\-#]{0,5}(?![0-9A-Za-z]))?(?:室|号|楼|层|房|户)?")
# What follows a house number in the same address: a building's name and its floor or
# room ("88号华星科技大厦12楼", "100号圣爱大厦1905"). Only taken when it ends in a number.
_ADDR_BUILDING = re.compile(
    r" ?[\u4e00-\u9fffA-Za-z]{0,8}?(?:大厦|大楼|写字楼|公寓|小区|花园|广场|中心|家园|"
    r"新村|园区|苑|府|城|院|座|栋|幢|号楼)"
    r" ?[0-9A-Za-z]+(?:-[0-9A-Za-z]+)*(?:室|号|楼|层|房|户|座|栋|幢|单元)?")
# Province, city, district and county suffixes end the part we keep, unless they are part
# of a word such as 小区 (community), 超市 (supermarket) or 市场 (market).
_ADMIN = re.compile(
    r"省|自治区|行政区|自治州|盟|地区|(?<![超城])市(?!场)|(?<![小社园校厂营片景])区|县|旗")
_ADDR_STOP = frozenset("在到址是于往给送寄住搬的了把从至向放:,;!? 。，；：！？、")
# Road names that hold one of those characters (解放路, 向阳路, 至善路): the walk back
# over a road name goes on through them.
_ROAD_WORDS_WITH_STOPS = frozenset({"解放", "向阳", "向荣", "至善", "至诚"})
_ADDR_BACK = 10      # at most this many characters of road/community name before an anchor
_ADDR_GAP = 12       # anchors further apart than this belong to different sentences

# --- names ---------------------------------------------------------------------------------
def _words(*words: str) -> str:
    """An alternation of literal words, the longest first (so "妈妈" wins over "妈")."""
    return "|".join(sorted(words, key=len, reverse=True))


_STRONG_CUE_WORDS = ("收件人", "寄件人", "发件人", "收货人", "联系人", "签收人", "取件人", "持卡人",
                     "代收人", "下单人", "投诉人", "户名", "姓名", "我叫", "本人叫", "名字叫",
                     "名字是", "名叫", "Name", "name")
# Weaker cues, which also start everyday phrases (我是不是, 找不到, 找客服, 联系方式): a
# name after one counts only when it stands alone, that is ends before punctuation, a
# space, the text's end or a character that cannot continue a name (NAME_STOP_CHARS):
# "我是田伟，", "找田伟!要求退款", "找王芳要求退款", not "找方法解决".
_WEAK_CUE_WORDS = ("我是", "本人是", "本人", "找一下", "找", "联系")
# People named by their role or relation to the writer: couriers, riders, agents and shop
# staff by name ("快递员王小明态度很差"), family and friends ("我老公李建国的快递"). A name
# right after one is taken as after a strong cue; the words that follow such a cue and start
# with a surname character are in NOT_NAMES ("快递员张口就骂", "客服高速回复").
_ROLE_WORDS = (
    "快递员", "快递小哥", "快递哥", "派件员", "派送员", "配送员", "送货员", "揽件员", "揽收员",
    "收派员", "小哥", "骑手", "外卖员", "司机", "客服", "售后", "店主", "店长", "老板", "掌柜",
    "业务员", "网点负责人", "负责人", "经理", "主管", "师傅", "买家",
    "送货的", "送快递的", "派件的", "配送的",
    *("我" + who for who in (
        "老公", "老婆", "爱人", "丈夫", "先生", "太太", "妻子", "媳妇", "妈妈", "妈", "爸爸", "爸",
        "母亲", "父亲", "儿子", "女儿", "哥哥", "哥", "姐姐", "姐", "弟弟", "弟", "妹妹", "妹",
        "朋友", "同事", "室友", "邻居", "家人", "婆婆", "公公", "奶奶", "爷爷", "外婆", "姥姥")))
# A parcel handed to someone ("寄给欧阳娜娜的包裹", "转给林志强处理"): as after a role.
_HANDED_WORDS = ("寄给", "转给", "交给", "送给", "递给", "打给", "发给", "拨给", "转告", "告诉",
                 "请联系", "麻烦联系")
# All cues in one pattern, scanned in C; the group that matched says which kind (strong
# first: "我叫" before "我是"). The lookahead, the first character of every cue word,
# keeps the scan from trying every branch at every position (6x slower without it).
_ANY_NAME_CUE = re.compile(
    "(?=[" + "".join(sorted({w[0] for w in (*_STRONG_CUE_WORDS, *_WEAK_CUE_WORDS, *_ROLE_WORDS,
                                             *_HANDED_WORDS)})) + "])(?:"
    f"(?P<strong>(?:{_words(*_STRONG_CUE_WORDS)})[ \t]*(?:[:：][ \t]*|是|为|叫)?"
    "(?:写的是|写的|写成|填的是|填的|填成|改成|改为)?[(（“\"「『]?)"
    f"|(?P<role>(?:{_words(*_ROLE_WORDS)})[ \t]*(?:[:：][ \t]*|是|叫)?[(（“\"「『]?)"
    f"|(?P<handed>(?:{_words(*_HANDED_WORDS)})[ \t]*)"
    f"|(?P<weak>(?:{_words(*_WEAK_CUE_WORDS)})[ \t]*))")
# A surname, compound ones first (欧阳 before 欧): where every Chinese name starts.
_SURNAME = "(?:" + "|".join(COMPOUND_SURNAMES) + "|[" + SURNAMES + "])"
# A full name just before a greeting, a title or a signature ("张伟你好", "王小明先生",
# "说张伟签收了"): a surname with a title ("王先生") identifies nobody and is kept. Some
# words are not that word when followed by more ("你好好查", "你好像", "小姐姐").
_TITLE_WORDS = ("你好", "您好", "先生", "女士", "小姐", "同学", "签收", "代收", "冒领", "冒签")
_NOT_THE_TITLE_WHEN = {"你好": "(?![好像歹意])", "您好": "(?![好像歹意])", "小姐": "(?!姐)"}
_TITLED_NAME = re.compile(_SURNAME + "[\u4e00-\u9fff]{1,2}?(?=" + "|".join(
    word + _NOT_THE_TITLE_WHEN.get(word, "") for word in _TITLE_WORDS) + ")")
_ANY_TITLE_WORD = re.compile("|".join(_TITLE_WORDS))
# ... and a name someone called or wrote to ("给刘德华打电话").
_CALLED_NAME = re.compile(
    "(?<=给)" + _SURNAME + "[\u4e00-\u9fff]{1,2}?"
    "(?=打电话|打了|打过|发消息|发了|发短信|发微信|回电|留言)")
# Rare surnames that are far likelier "and", "to" or an adverb where a name could start
# ("快递员和客服", "客服全程敷衍", "我和张伟签收").
_NOT_A_SURNAME_HERE = frozenset("和向于连全时常万")
_CN_NAME = re.compile(_SURNAME + "[\u4e00-\u9fff]{1,2}")
# ... written with a space after the surname, as in a form ("收件人:张 伟")
_SPACED_CN_NAME = re.compile(_SURNAME + " [\u4e00-\u9fff]{1,2}(?![\u4e00-\u9fff])")
# A surname with a job title names nobody, like 王先生: "客服李经理", "王总说".
_TITLES = frozenset({"经理", "主管", "师傅", "老师", "总监", "老板", "主任", "队长", "站长",
                     "店长", "科长", "部长", "处长", "组长", "医生", "律师", "阿姨", "大姐",
                     "大哥", "叔叔", "同学", "专员", "总"})
# A second name joined to one just found ("收件人是李娜和王秀兰").
_AND_NAME = re.compile("[和与跟及、]" + _SURNAME + "[\u4e00-\u9fff]{1,2}")
# A surname someone states ("我姓赵，叫赵丽颖"): the full name may follow anywhere.
_STATED_SURNAME = re.compile("我姓(" + _SURNAME + ")")
_LATIN_NAME = re.compile(r"[A-Z][a-z]+(?:[ .][A-Z][a-z]+){0,2}")


def _id_date_ok(yyyymmdd: str) -> bool:
    year, month, day = int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:])
    if not (1900 <= year <= 2099 and 1 <= month <= 12 and 1 <= day <= _DAYS[month]):
        return False
    return month != 2 or day < 29 or (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0))


def _id18_checksum_ok(s: str) -> bool:
    total = sum((ord(c) - 48) * w for c, w in zip(s, _ID_WEIGHTS))
    return "10X98765432"[total % 11] == s[17].upper()


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        n = ord(c) - 48
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _classify(groups: list[str], cue: int, glued: str) -> str | None:
    """Kind of the digit groups ``groups`` (the first may start with +, the last may end
    in X), or None. ``cue`` is the kind of cue word just before (1 ID, 2 card, 3 order);
    ``glued`` the Latin letters stuck in front of the digits."""
    s = "".join(groups)
    kind = _kind(s, groups, cue)
    if kind in ("mobile", "landline") and glued and glued.lower() not in _PHONE_WORDS:
        return None   # JDVA13812345678 is a tracking number, not a phone
    return kind


def _kind(s: str, groups: list[str], cue: int) -> str | None:
    if len(groups) > 1:
        if any(len(g) < 3 for g in groups[:-1]) and groups[0] not in ("86", "+86"):
            return None   # "2026-11-02 13" is a date, not one number
        if groups[0] in ("86", "+86", "0086", "+0086"):
            rest = "".join(groups[1:])
            if len(groups) <= 4 and _MOBILE.fullmatch(rest):
                return "mobile"
            # +86-755-12345678: an area code without its 0, then 7-8 digits
            area = groups[1]
            if (2 <= len(area) <= 3 and area[0] != "0" and len(groups) <= 4
                    and len(rest) - len(area) in (7, 8)):
                return "landline"
            return None
    if s[0] == "+":
        s = s[1:]
        if not s.startswith("86"):
            return None
    n = len(s)
    if s[-1] in "Xx":
        if n == 18 and (cue == 1 or _id18_ok(s)):
            return "id"
        return None
    if n == 11:
        if len(groups) <= 3 and _MOBILE.fullmatch(s):
            return "mobile"
    elif n in (13, 15) and s[:n - 11] in ("86", "0086") and _MOBILE.fullmatch(s, n - 11):
        return "mobile"
    if cue == 1 and 15 <= n <= 18:
        return "id"      # after 身份证: even a mistyped or truncated number
    if n == 18 and _id18_ok(s):
        return "id"
    if n == 15 and s[:2] in _PROVINCES and _id_date_ok("19" + s[6:12]):
        return "id"
    if 16 <= n <= 19:
        if cue == 2:
            return "card"
        if s[0] in _CARD_FIRST and _luhn_ok(s) and (cue != 3 or s[:2] == "62"):
            return "card"
    if 2 <= len(groups) <= 3 and _LANDLINE.fullmatch(groups[0]) and n - len(groups[0]) in (7, 8):
        return "landline"
    if len(groups) == 1 and n in (11, 12) and s[0] == "0" and s[1] != "0":
        return "landline"   # area code and number without a dash: 075587654321
    return None


def _id18_ok(s: str) -> bool:
    """An 18-character ID: the birth date must be valid, and then either the check digit
    or the province code. A typo outside the date still gets masked."""
    return _id_date_ok(s[6:14]) and (_id18_checksum_ok(s) or s[:2] in _PROVINCES)


_WHOLE_RUN_KINDS = frozenset({"mobile", "id", "card", "landline"})
_MAX_GROUPS = 6   # the most groups one number is written in: 440 305 199 001 011 23X


def _digit_spans(t: str, out: list[PiiSpan]) -> bool:
    """Append the digit-based spans of ``t`` to ``out``; return whether a run was only
    partly masked (then masking may leave digit groups next to kept digits)."""
    partial = False
    for m in _RUN.finditer(t):
        start, end = m.span()
        if end - start < _MIN_DIGITS:
            continue   # cheap reject of "3天", "299": separators only make a run longer
        if start >= 2 and t[start - 1] == "." and t[start - 2].isdigit() or (
                t[end:end + 1] == "." and t[end + 1:end + 2].isdigit()):
            continue   # a decimal such as 0.13812345678 or 13812345678.00
        if not m.group().isdigit():
            groups = [(g.start(), g.end()) for g in _GROUP.finditer(t, start, end)]
            if t[start] == "+":
                groups[0] = (start, groups[0][1])
            if sum(b - a for a, b in groups) < _MIN_DIGITS:
                continue
        else:
            groups = [(start, end)]
        glued = ""
        if start and t[start - 1].isascii() and t[start - 1].isalpha():
            glued = _LETTERS_BEFORE.search(t, max(0, start - 12), start).group()
            if _ESCAPE_BEFORE.search(t, max(0, start - 6), start):
                glued = ""   # "\\n138…", "\\u8bdd138…" in a JSON excerpt: not a code
            elif glued in ("X", "x") and start >= 2 and t[start - 2].isdigit():
                glued = ""   # the check letter of an ID typed just before: 1002X13812345678
        # cues only change the verdict on ID- and card-length runs
        cue = _cue_before(t, start) if end - start >= 15 else 0
        n = len(groups)
        if n == 1 and end - start >= _MIN_GLUED:
            # Longer than any one number: an order or transaction number (left alone), or
            # numbers typed back to back ("1381234567813912345678", masked): the whole run
            # must split into valid numbers, which random digits rarely do.
            pieces = _glued_numbers(t, start, end, cue, glued)
            out.extend(pieces)
            # numbers at the ends only: what is left between may read as a new number
            partial = partial or bool(pieces) and sum(s.end - s.start for s in pieces) != end - start
            continue
        if n == 11 and end - start == 21 and _MOBILE.fullmatch(t[start:end:2]):
            out.append(PiiSpan("mobile", start, end))    # 1 3 8 1 2 3 4 5 6 7 8
            continue
        # Greedy left to right, widest window first: "单号 123456 138 1234 5678" holds a
        # phone after a number that is nothing. Linear in the number of groups.
        i = 0
        while i < n:
            for j in range(min(n, i + _MAX_GROUPS), i, -1):
                kind = _classify([t[a:b] for a, b in groups[i:j]], cue if i == 0 else 0,
                                 glued if i == 0 else "")
                if kind:
                    out.append(PiiSpan(kind, groups[i][0], groups[j - 1][1]))
                    partial = partial or j - i < n
                    i = j
                    break
            else:
                i += 1
    return partial


def _cue_before(t: str, start: int) -> int:
    """The kind of the nearest cue word just before ``start``: 1 ID, 2 card, 3 order, 0."""
    cue = 0
    for c in _CUE.finditer(t, max(0, start - _CUE_WINDOW), start):
        cue = c.lastindex or 0
    return cue


_MIN_GLUED = 22   # two mobile numbers, the shortest pair; a single number has <= 19 digits
_PIECE_LENGTHS = (11, 18, 15, 19, 16, 17)   # mobile, ID, old ID, cards


def _glued_numbers(t: str, start: int, end: int, cue: int, glued: str) -> list[PiiSpan]:
    """Spans of the numbers that ``t[start:end]``, one digit run, is made of exactly, or
    none when it does not split into valid mobile, ID and card numbers end to end.

    >>> [(s.kind, s.end - s.start) for s in _glued_numbers("1381234567813912345678", 0, 22, 0, "")]
    [('mobile', 11), ('mobile', 11)]
    >>> _glued_numbers("4200001234202611021234567890", 0, 28, 0, "")
    []
    """
    # Right to left: piece[at] is (length, kind) of a valid number starting at ``at``
    # after which the rest splits too. Linear in the run's length, no recursion: a
    # complaint text may be 20,000 digits of "13812345678" repeated.
    piece: dict[int, tuple[int, str]] = {}
    for at in range(end - 11, start - 1, -1):
        first = at == start
        for length in _PIECE_LENGTHS:
            after = at + length
            if after > end or (after != end and after not in piece):
                continue
            kind = _classify([t[at:after]], cue if first else 0, glued if first else "")
            if kind in _WHOLE_RUN_KINDS:
                piece[at] = (length, kind)
                break
    spans = []
    at = start
    while at in piece:   # follows the split from the start; absent: the run does not split
        length, kind = piece[at]
        spans.append(PiiSpan(kind, at, at + length))
        at += length
    if at == end:
        return spans
    if _ORDER_CUE_JUST_BEFORE.search(t, max(0, start - _CUE_WINDOW), start):
        return []   # "交易号4200…": said to be an order's; only an exact split is masked
    return _numbers_at_the_ends(t, start, end, glued)


def _numbers_at_the_ends(t: str, start: int, end: int, glued: str) -> list[PiiSpan]:
    """The mobile and ID numbers at the start and the end of a long digit run that does
    not split into numbers: a phone typed against an order number
    (``13812345678`` + 20 digits). The digits between are left alone.

    Personal data must not reach storage, so this errs on the side of masking: a
    transaction number whose last 11 digits look like a mobile (1[3-9] + 9 digits,
    about 7 % of random tails) loses four digits of its tail. Not right after an
    order cue (订单号, 交易号：, 流水号 ...): that number is said to be an order's.

    >>> [(s.kind, s.start, s.end) for s in _numbers_at_the_ends("13812345678" + "2" * 20, 0, 31, "")]
    [('mobile', 0, 11)]
    >>> [(s.kind, s.start, s.end) for s in _numbers_at_the_ends("4" * 20 + "13812345678", 0, 31, "")]
    [('mobile', 20, 31)]
    >>> _numbers_at_the_ends("4200001234202611021234567890", 0, 28, "")
    []
    """
    spans = []
    at = start
    while end - at >= 11:   # from the start: mobile or ID numbers, one after another
        for length in (11, 18):
            kind = _classify([t[at:at + length]], 0, glued if at == start else "") \
                if at + length <= end else None
            if kind in ("mobile", "id"):
                spans.append(PiiSpan(kind, at, at + length))
                at += length
                break
        else:
            break
    tail: list[PiiSpan] = []
    stop = end
    while stop - at >= 11:   # and from the end, in what the start left
        for length in (11, 18):
            kind = _classify([t[stop - length:stop]], 0, "") if stop - length >= at else None
            if kind in ("mobile", "id"):
                tail.append(PiiSpan(kind, stop - length, stop))
                stop -= length
                break
        else:
            break
    return spans + tail[::-1]


def _address_anchors(t: str) -> Iterator[re.Match[str]]:
    """Yield the address anchors in ``t``, left to right, without overlaps."""
    last = 0
    for suffix in _ADDR_SUFFIX.finditer(t):
        if suffix.start() < last:
            continue
        pos, hi = max(last, suffix.start() - _ANCHOR_REACH), suffix.end() + _ANCHOR_REACH
        while (m := _ADDR_ANCHOR.search(t, pos, hi)) is not None and m.start() <= suffix.start():
            if suffix.start() < m.end():
                last = m.end()
                yield m
                break
            pos = m.start() + 1


def _address_spans(t: str, out: list[PiiSpan]) -> None:
    spans: list[list] = []     # [start, end, strong]
    for m in _address_anchors(t):
        a, e = m.span()
        e = _ADDR_TAIL.match(t, e).end()
        while (more := _ADDR_BUILDING.match(t, e)) is not None:
            e = _ADDR_TAIL.match(t, more.end()).end()
        if spans and a - spans[-1][1] <= _ADDR_GAP and not any(
                c in _ADDR_STOP and c != " " for c in t[spans[-1][1]:a]):
            spans[-1][1:] = [max(spans[-1][1], e), True]   # next part of the same address
            continue
        start = a
        lo = max(0, a - _ADDR_BACK)
        # walk back over the road / community name, up to a cue such as 在/到/住/地址:
        # (over a space between two names too: "三里屯SOHO 5号楼")
        while start > lo:
            c = t[start - 1]
            if c == " " and start - 2 >= lo and t[start - 2].isalnum() and (
                    t[start - 2] not in _ADDR_STOP):
                start -= 1
            elif c in _ADDR_STOP:
                if t[start - 2:start] in _ROAD_WORDS_WITH_STOPS:      # 解放
                    start -= 2
                elif t[start - 1:start + 1] in _ROAD_WORDS_WITH_STOPS:  # 向阳
                    start -= 1
                else:
                    break
            elif c.isalnum():
                start -= 1
            else:
                break
        while t[start] == " ":
            start += 1
        if t[start] == "第":
            start += 1
        admin = None
        for admin in _ADMIN.finditer(t, start, a):
            pass
        # A lone "3栋", "5号楼" or "一路3号" with no road or community name and no
        # district before it is small talk (or a date), not an address.
        strong = admin is not None or a - start >= 2
        if admin is not None:
            start = admin.end()      # keep province / city / district
        spans.append([start, e, strong])
    spans = [(a, e) for a, e, strong in spans if strong]
    if spans:
        # never cut a digit run in two: the half left unmasked could be read as a new number
        runs = [m.span() for m in _RUN.finditer(t)]
        widened: list[list[int]] = []
        for a, e in spans:
            for r0, r1 in runs:
                if r0 < a < r1:
                    a = r0
                if r0 < e < r1:
                    e = r1
            if widened and a < widened[-1][1]:   # widened into the one before: one span
                widened[-1][1] = max(widened[-1][1], e)
            else:
                widened.append([a, e])
        out.extend(PiiSpan("address", a, e) for a, e in widened)


def _given_name_end(t: str, pos: int, most: int) -> int:
    """Where the name starting at ``t[pos]`` (a surname) ends, at ``most`` at the latest;
    0 if it is no name: no given-name character ("王先生"), a surname and a title
    ("李经理"), or a word in NOT_NAMES ("黄牛")."""
    given = pos + 2 if t[pos:pos + 2] in COMPOUND_SURNAMES else pos + 1
    end = given
    while end < most and t[end] not in NAME_STOP_CHARS:
        end += 1
    if end == given or t[pos:pos + 2] in NOT_NAMES or t[given:given + 2] in _TITLES or (
            end == given + 1 and t[given] in _TITLES):
        return 0
    return end


def _name_spans(t: str, out: list[PiiSpan]) -> None:
    cued: list[PiiSpan] = []   # may overlap ("我姓赵，我叫赵丽颖"): merged below
    for cue in _ANY_NAME_CUE.finditer(t):
        kind = cue.lastgroup
        pos = cue.end()
        weak = kind == "weak"
        # after a role, an adverb or "and" is far likelier than these rare surnames
        if t[pos:pos + 1] in _NOT_A_SURNAME_HERE and (
                kind == "role" or kind == "handed" or cue.group().startswith("本人")):
            continue   # ... and after 本人 ("本人于今天签收")
        m = _CN_NAME.match(t, pos)
        if m is not None:
            end = _given_name_end(t, pos, m.end())
            if end and not (weak and end < len(t) and "\u4e00" <= t[end] <= "\u9fff"
                            and t[end] not in NAME_STOP_CHARS):
                cued.append(PiiSpan("name", pos, end))
                if not weak:   # "和王秀兰" after it
                    while (m := _AND_NAME.match(t, end)) is not None and (
                            more := _given_name_end(t, end + 1, m.end())):
                        cued.append(PiiSpan("name", end + 1, more))
                        end = more
        elif kind == "strong":
            m = _SPACED_CN_NAME.match(t, pos) or _LATIN_NAME.match(t, pos)
            if m is not None:
                cued.append(PiiSpan("name", pos, m.end()))
    if "我姓" in t:
        for stated in _STATED_SURNAME.finditer(t):
            surname, pos = stated.group(1), t.find(stated.group(1), stated.end())
            while pos >= 0:
                m = _CN_NAME.match(t, pos)
                end = m and _given_name_end(t, pos, m.end())
                if end:
                    cued.append(PiiSpan("name", pos, end))
                pos = t.find(surname, pos + 1)
    _merge(out, cued)   # in place: sorted, without overlaps
    patterns = []   # each only where its words are (a search costs ~1.5 us per text)
    if _ANY_TITLE_WORD.search(t):
        patterns.append(_TITLED_NAME)
    if "给" in t:
        patterns.append(_CALLED_NAME)
    more = []
    for pattern in patterns:
        pos = 0
        while (m := pattern.search(t, pos)) is not None:
            start, end = m.span()
            if t[start] in _NOT_A_SURNAME_HERE or t[start:start + 2] in NOT_NAMES:
                pos = start + 1   # "我和张伟签收": the name may start one later
                continue
            more.append(PiiSpan("name", start, end))
            pos = end
    if more:
        _merge(out, more)   # in place: those not overlapping a name found already, sorted
    if out:   # a name found once is masked wherever it recurs ("说张伟签收了，可张伟不在家")
        recurring = []
        for name in dict.fromkeys(t[s.start:s.end] for s in out):   # in order: deterministic
            at = t.find(name)
            while at >= 0:
                recurring.append(PiiSpan("name", at, at + len(name)))
                at = t.find(name, at + len(name))
        _merge(out, recurring)


def find_pii(text: str) -> list[PiiSpan]:
    """Return the personal data in ``text`` as sorted, non-overlapping spans.

    Emails are found first, then digit runs (ID, card, mobile, landline), then addresses
    (which swallow the numbers inside them), then names.

    Parameters
    ----------
    text
        Any text; full-width digits and letters are recognised.

    Examples
    --------
    >>> find_pii("电话１３８１２３４５６７８")
    [PiiSpan(kind='mobile', start=2, end=13)]
    >>> find_pii("YT1234567890123 299.00元 2026-11-02 13:45")
    []
    """
    return _find(text)[0]


def _find(text: str) -> tuple[list[PiiSpan], bool]:
    """:func:`find_pii`, and whether masking these spans might leave something to find."""
    if not text:
        return [], False
    t = text.translate(_FOLD) if _NEEDS_FOLD.search(text) else text
    found: list[PiiSpan] = []
    if "@" in t or "at)" in t or "at]" in t or "#" in t or " dot " in t or " DOT " in t:
        found.extend(PiiSpan("email", *m.span()) for m in _EMAIL.finditer(t))
    new: list[PiiSpan] = []
    partial = _digit_spans(t, new)
    # Numbers found by other shapes may overlap the digit runs' (138一二三四5678 holds
    # the run 5678): they join those that do not overlap.
    other: list[PiiSpan] = []
    if "." in t or "/" in t:
        other.extend(PiiSpan("mobile" if m.lastindex == 1 else "landline", *m.span())
                     for m in _DOTTED_PHONE.finditer(t))
        if "86" in t:
            other.extend(PiiSpan("mobile" if m.lastindex == 1 else "landline", *m.span())
                         for m in _DOTTED_ABROAD.finditer(t))
        for m in _DOTTED_GROUPS.finditer(t):
            kind = _classify(_GROUP.findall(m.group()), _cue_before(t, m.start()), "")
            if kind in ("card", "id"):
                other.append(PiiSpan(kind, *m.span()))
    if "(" in t or "（" in t:
        other.extend(PiiSpan("landline", *m.span()) for m in _BRACKET_LANDLINE.finditer(t))
    if "护照" in t or "通行证" in t or "assport" in t:
        other.extend(PiiSpan("passport", *m.span(1)) for m in _PASSPORT.finditer(t))
    if _ANY_CN_NUMERAL.search(t):
        if "身份证" in t or "证件号" in t:
            for m in _CN_ID.finditer(t):
                if _ANY_CN_NUMERAL.search(m.group(1)):   # 15-18: as digits after the cue
                    other.append(PiiSpan("id", *m.span(1)))
                    partial = True
        for m in _CN_MOBILE.finditer(t):
            a, b = m.span()
            if not _ANY_CN_NUMERAL.search(t, a, b):
                continue   # digits alone: a digit run
            if (a == 0 or t[a - 1] not in _CN_NUMERALS and not t[a - 1].isdigit()) and (
                    b == len(t) or t[b] not in _CN_NUMERALS and not t[b].isdigit()):
                other.append(PiiSpan("mobile", a, b))
            # Masked, numerals become digits, which may join digits beside them; left
            # alone against digits, they may read as a mobile once a number beside them
            # is masked (its end digits kept). Either way the masked text is searched again.
            partial = True
    if other:
        new = _merge(new, other) if new else other
    if new:
        found = _merge(found, new) if found else new
        new = []
    _address_spans(t, new)
    if new:
        found = _merge(found, new, absorb=True) if found else new
        new = []
    _name_spans(t, new)
    if new:
        found = _merge(found, new) if found else new
    # A whole digit run masked keeps digits at both ends, as before, so nothing new can
    # appear; a partly masked run or a masked email/address/name changes what is next to
    # what, so the masked text must be checked again.
    return found, partial or any(s.kind not in _WHOLE_RUN_KINDS for s in found)


def _merge(kept: list[PiiSpan], new: list[PiiSpan], absorb: bool = False) -> list[PiiSpan]:
    """Add ``new`` spans that do not overlap ``kept`` ones, in turn, and sort (``kept``
    itself is extended and sorted, unless ``absorb``); with ``absorb`` a new span
    swallows the kept spans it overlaps (an address around a house number)."""
    for s in new:
        hits = [k for k in kept if k.start < s.end and s.start < k.end]
        if not hits:
            kept.append(s)
        elif absorb:
            kept = [k for k in kept if k not in hits]
            kept.append(PiiSpan(s.kind, min(s.start, *(k.start for k in hits)),
                                max(s.end, *(k.end for k in hits))))
    kept.sort(key=lambda s: s.start)
    return kept


_NOT_DIGIT_OR_X = re.compile(r"[^0-9Xx]")


def _replacement(kind: str, value: str) -> str:
    if kind in ("mobile", "id", "card", "landline"):
        plain = value.translate(_FOLD).translate(_CN_DIGITS)
        d = _NOT_DIGIT_OR_X.sub("", plain)
        if kind == "mobile":
            # keep a country prefix ("+86 "): dropping it could glue the masked number
            # to digits before it; the number proper starts at its 11th digit from the end
            cut = [i for i, c in enumerate(plain) if c.isdigit()][-11]
            return f"{value[:cut]}{d[-11:-8]}****{d[-4:]}"
        if kind == "id":
            return d[:3] + "*" * (len(d) - 7) + d[-4:]
        if kind == "card":
            return f"{d[:4]} **** **** {d[-4:]}"
        plain = value.translate(_FOLD)
        area = _AREA_CODE.match(plain)
        if area is not None:
            return f"{area.group(1)}-****{d[-4:]}"
        abroad = _ABROAD_AREA.match(plain)
        return f"+86-{abroad.group(1) if abroad else ''}-****{d[-4:]}"
    if kind == "passport":
        return value[0] + "*" * (len(value) - 4) + value[-3:]
    if kind == "email":
        local, domain = _AT.split(value.translate(_FOLD), maxsplit=1)
        # a phone number as the domain (13812345678.com) is masked with the local part
        return f"{local[0]}***@{_LONG_DIGITS.sub('***', domain)}"
    if kind == "name":
        return value[:2] + "*" if value[:2] in COMPOUND_SURNAMES else value[0] + "*"
    return "***"


def mask_pii(text: str) -> str:
    """Return ``text`` with every :func:`find_pii` span replaced by its masked form.

    Masking is idempotent on realistic text; on adversarial concatenations (a card number
    glued to ``@b.cn``) a second pass may mask a little more, never less. Its output never
    holds what :func:`contains_unmasked_pii` looks for.

    Examples
    --------
    >>> mask_pii("我的卡6222 0212 3456 7890 128，身份证110105194912310021")
    '我的卡6222 **** **** 0128，身份证110***********0021'
    >>> mask_pii("发到z.san@example.com，我叫王小明")
    '发到z***@example.com，我叫王*'
    """
    spans, recheck = _find(text)
    # Masking can, rarely, create something new to find: leftover digit groups of a partly
    # masked run next to kept digits, digits left before an "@". In those cases mask again
    # until nothing is found (once more is the most seen), then star every digit.
    for _ in range(4):
        if not spans:
            return text
        parts = []
        pos = 0
        for s in spans:
            parts.append(text[pos:s.start])
            parts.append(_replacement(s.kind, text[s.start:s.end]))
            pos = s.end
        parts.append(text[pos:])
        text = "".join(parts)
        if not recheck:
            return text
        spans, recheck = _find(text)
    return _DIGIT.sub("*", text) if spans else text


_JSON_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|[nrtbf\"\\/])")
_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": " ", "f": " ", '"': '"', "\\": "\\",
                   "/": "/"}


def _unescape(m: re.Match[str]) -> str:
    e = m.group(1)
    return chr(int(e[1:], 16)) if e[0] == "u" else _SIMPLE_ESCAPES[e]


def contains_unmasked_pii(text: str, kinds: frozenset[str] = SCANNED_KINDS) -> bool:
    """Whether ``text`` (any output: JSON lines, logs, alert bodies) still holds personal data
    of ``kinds``: mobile numbers, resident IDs and bank cards by default.

    JSON escapes (``\\u5e7f``, ``\\n``) are decoded first, so ``\\n13812345678`` in a JSON
    dump is not hidden behind the ``n``. ``mask_pii`` output never trips the scanner.

    Examples
    --------
    >>> contains_unmasked_pii('{"text": "\\\\u7535\\\\u8bdd13812345678"}')
    True
    >>> contains_unmasked_pii("电话138****5678，订单202611021234567890")
    False
    """
    if "\\" in text:
        text = _JSON_ESCAPE.sub(_unescape, text)
    return any(s.kind in kinds for s in find_pii(text))


def pseudonymise(value: str, key: bytes) -> str:
    """Keyed pseudonym of ``value``: HMAC-SHA256 truncated to 16 bytes, as 32 hex characters.

    Joinable (the same value and key give the same pseudonym) but not reversible by
    enumerating the ~10^10 mobile numbers, as a bare hash would be. Keep ``key`` in a secret
    store and rotate it with a re-keying plan.

    Examples
    --------
    >>> pseudonymise("13812345678", key=b"secret") == pseudonymise("13812345678", key=b"secret")
    True
    >>> pseudonymise("13812345678", key=b"secret") == pseudonymise("13812345678", key=b"other")
    False
    """
    if not key:
        raise ValueError("pseudonymise needs a non-empty secret key")
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).digest()[:16].hex()


def evaluate_masker(path: str | os.PathLike[str]) -> dict:
    """Recall per kind and false positives of :func:`find_pii` on a labelled JSONL file.

    Each line is ``{"text": ..., "pii": [{"kind": ..., "value": ...}, ...]}``; ``value`` is
    the exact substring of ``text``. A labelled value counts as caught when a found span
    overlaps it and the value no longer appears in ``mask_pii(text)`` (the kind found may
    differ: masked is masked). A found span that overlaps no labelled value is a false
    positive.

    Returns
    -------
    dict
        ``n_texts``, ``n_negative_texts`` (texts without personal data), ``support``,
        ``recall`` and ``precision`` per kind, ``false_positives`` per kind,
        ``fp_text_rate`` (share of texts with at least one false positive),
        ``fp_negative_rate`` (the same among texts without personal data) and ``misses``
        (kind, value, text) for inspection.
    """
    support: dict[str, int] = {}
    caught: dict[str, int] = {}
    found: dict[str, int] = {}
    correct: dict[str, int] = {}
    fps: dict[str, int] = {}
    misses: list[tuple[str, str, str]] = []
    n = n_neg = fp_texts = fp_neg = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            text = rec["text"]
            n += 1
            spans = find_pii(text)
            masked = mask_pii(text)
            gold = []
            for item in rec["pii"]:
                start = text.find(item["value"])
                if start < 0:
                    raise ValueError(f"{item['value']!r} is not in {text!r}")
                gold.append((item["kind"], start, start + len(item["value"]), item["value"]))
            for kind, a, b, value in gold:
                support[kind] = support.get(kind, 0) + 1
                hit = any(s.start < b and a < s.end for s in spans) and value not in masked
                caught[kind] = caught.get(kind, 0) + hit
                if not hit:
                    misses.append((kind, value, text))
            has_fp = False
            for s in spans:
                found[s.kind] = found.get(s.kind, 0) + 1
                if any(s.start < b and a < s.end for _, a, b, _ in gold):
                    correct[s.kind] = correct.get(s.kind, 0) + 1
                else:
                    fps[s.kind] = fps.get(s.kind, 0) + 1
                    has_fp = True
            fp_texts += has_fp
            if not gold:
                n_neg += 1
                fp_neg += has_fp
    return {
        "n_texts": n,
        "n_negative_texts": n_neg,
        "support": dict(sorted(support.items())),
        "recall": {k: caught[k] / v for k, v in sorted(support.items())},
        "precision": {k: correct.get(k, 0) / v for k, v in sorted(found.items())},
        "false_positives": dict(sorted(fps.items())),
        "fp_text_rate": fp_texts / n if n else 0.0,
        "fp_negative_rate": fp_neg / n_neg if n_neg else 0.0,
        "misses": misses,
    }
