"""Dead-letter records: what was wrong with an input, where it was, and no personal data.

A dead letter says *why* and *where* (topic/partition/offset, or file and line), never
carries a complaint's raw text, and masks personal data in whatever excerpt it keeps:
the dead-letter topic is read by more people than the complaint system.

JSON escapes are decoded first (``\\uXXXX`` including surrogate pairs and full-width
forms, ``\\t``, ``\\n`` and the rest but ``\\"`` and ``\\\\``; also when escaped twice), so
neither the masker nor the rules below are dodged by an escaped digit, separator or key.

Free text is recognised two ways. The value of every ``text`` key is omitted, whatever
its type (string, array, object) and however the key is spelt (``"te\\u0078t"``): in a
payload that parses as JSON by walking it, in one that does not (a truncated line) by
scanning for the key and the value's end; a value whose end cannot be found (not JSON,
or cut off) is omitted to the end of the line. Then, in every excerpt and in ``detail``,
``event_id`` and ``event_type``, each run of CJK characters (joined by punctuation or
spaces) becomes ``<text N chars>`` unless it is made of words of the event contract:
region names (广东, 广东省, 深圳市), carriers (中通, 京东物流, 中通快递), categories (服饰) and
the Chinese forms of menu values (已签收, 满意, 会员). A run of more than four ideographs
is always text. A short run is not safe because it is short: it is a name as often as
a word (黄蓉, 欧阳娜娜), so anything outside the list (:data:`_CONTRACT_WORDS`) is blanked;
that catches text the parser could not find (a line that is not JSON, a CSV line, a
truncated object, text under another key) and names in short fields.

Romanised names (``Zhang Wei``, ``LI NA``, ``ZhangWei``, ``Ou-Yang``, ``Zhāng Wěi``, full-width
``Ｚｈａｎｇ``) take the same rule, in the same fields. A token of Latin letters, digits,
``_`` and ``-`` that holds a digit is an identifier, a number or a timestamp (``o-123``,
``ev-audit-D5``, ``2026-11-02T10:00:00+08:00``, ``1e5``) and stays; so does a name glued to
digits (``ZhangWei138…``), read as an identifier. Letter-only tokens joined by spaces or
a middle dot make a run, which stays only if each of its words (split at ``-``, ``_`` and
camelCase humps, compared case-insensitively) is a word of the contract or a single
letter (an initial names nobody; ``x`` is a key); otherwise the whole run becomes
``<text N chars>``, N its letters (``广东 Zhang Hainan``: ``Hainan`` alone would be a region).
The contract's Latin words (:data:`_CONTRACT_LATIN`) are read off the event models:
field names, type tags and enum values (``order_status``, ``out_for_delivery``), with
``true``/``false``/``null`` and the Latin menu values the models leave free (channels,
tiers, carriers' codes such as SF and EMS, English category names). Pinyin place names
are left out on purpose (``Hefei`` reads as He Fei), and so are keys outside the
contract (``"note"`` shows as ``"<text 4 chars>"``: a key may be a name too). ``detail``
holds our own messages and msgspec's, which quote the bad value (``Invalid enum value
'…' - at `$.status```, ``timestamp '…' is not RFC 3339``): there the words of those
messages are kept as well (:data:`_MESSAGE_LATIN`), so a message stays readable and
only what it quotes is judged; an internal error keeps its exception's type. Our own
markers (``<complaint text omitted>``, ``<text N chars>``) are never touched.

>>> _blank_free_text('c-7,广东,中通,app,我是田伟，快递三天没动了,normal')
'c-7,广东,中通,app,<text 11 chars>,normal'
>>> _blank_free_text('{"region":"广东省","carrier":"中通快递","csat":"黄蓉"}')
'{"region":"广东省","carrier":"中通快递","csat":"<text 2 chars>"}'
>>> _blank_free_text('{"type":"order","event_id":"ev-o-1","carrier":"SF","name":"Zhang Wei"}')
'{"type":"order","event_id":"ev-o-1","carrier":"SF","<text 4 chars>":"<text 8 chars>"}'
>>> _blank_free_text('c-8,LI NA,ZhangWei,Ou-Yang,o-123,2026-11-02T10:00:00+08:00,SHIPPED,vip')
'c-8,<text 4 chars>,<text 8 chars>,<text 6 chars>,o-123,2026-11-02T10:00:00+08:00,SHIPPED,vip'
>>> _scrub("Invalid enum value 'Wang Xiuying 13812345678' - at `$.status`", _MESSAGE_LATIN)
"Invalid enum value '<text 11 chars> 138****5678' - at `$.status`"
>>> _omit_text('{"e":"e1","tex\\\\u0074":["关羽","解放路12号"],"x":1,"text":"林')
'{"e":"e1","tex\\\\u0074":"<complaint text omitted>","x":1,"text":"<complaint text omitted>'
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

import msgspec.inspect
import orjson

from riskwatch.events import BadEvent, Event
from streams.text import HIGH_TIERS, mask_pii

__all__ = ["dead_letter", "internal_error_letter", "mask_short"]

# A "text" key in a payload that does not parse, however it is spelt ("tex\u0074"), and
# the pieces of the value after it: a string (perhaps cut off), brackets, anything else
# up to a bracket or a string, a scalar. Complaint text is dropped from dead letters
# entirely, not just masked: names and addresses in free text defeat regex masking often
# enough that we do not keep it.
_TEXT_KEY = re.compile('"' + "".join(rf"(?:{c}|\\+u00{ord(c):x})" for c in "text") + r'"\s*:\s*')
_QUOTE_OR_BRACKET = re.compile(r'["\[\]{}]')
_JSON_SCALAR = re.compile(r'(?:-?[0-9][0-9.eE+-]*|true|false|null)(?=\s*(?:[,}\]]|$))')
_TEXT_OMITTED = "<complaint text omitted>"
# A run of JSON escapes, however many backslashes each has (a payload escaped twice, as
# a JSON string inside JSON, shows "\\uff11"). \" and \\ are not part of a run.
_ESCAPE_RUN = re.compile(r"(?:\\+(?:u[0-9a-fA-F]{4}|[bfnrt/]))+")
_BACKSLASHES = re.compile(r"\\+")
_SURROGATE = re.compile("[\ud800-\udfff]")
# A run of CJK characters (ideographs, CJK and full-width punctuation) that may be joined
# by spaces and sentence punctuation; neither quotes nor commas join, as they delimit
# JSON and CSV fields. Runs with more than _MAX_KEPT_CJK ideographs are free text, and
# so are shorter ones with an ideograph word that is not in _CONTRACT_WORDS.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RUN = re.compile(
    rf"[{_CJK}\u3000-\u303f\uff01-\uff60](?:[{_CJK}\u3000-\u303f\uff01-\uff60"
    rf"\u2014\u2026\u201c\u201d \t!?.;:~*()\\-]*[{_CJK}\u3000-\u303f\uff01-\uff60])?")
_IDEOGRAPHS = re.compile(f"[{_CJK}]+")
_MAX_KEPT_CJK = 4


def _words(text: str, *suffixes: str) -> set[str]:
    return {w + s for w in text.split() for s in ("", *suffixes)}


# Words of the event contract a dead letter keeps readable: the values of its dimension
# fields (region, carrier, category) and the Chinese forms of its menu values (order and
# complaint status, complaint type, satisfaction, tier, channel) a producer may send by
# mistake. Every other short run of ideographs may be a name (黄蓉, 欧阳娜娜) and is blanked,
# so a word missing here costs readability, never privacy: add it. Given names that are
# also place names (金华, 天天) are left out on purpose.
_CONTRACT_WORDS: frozenset[str] = frozenset(w for w in (
    # provinces, municipalities, autonomous regions and SARs; big cities; areas
    _words("河北 山西 辽宁 吉林 黑龙江 江苏 浙江 安徽 福建 江西 山东 河南 湖北 湖南 广东 海南 "
           "四川 贵州 云南 陕西 甘肃 青海 台湾", "省")
    | _words("北京 天津 上海 重庆", "市")
    | _words("内蒙古 广西 西藏 宁夏 新疆 香港 澳门")
    | _words("广州 深圳 东莞 佛山 珠海 杭州 宁波 温州 义乌 南京 苏州 无锡 常州 济南 青岛 临沂 "
             "郑州 成都 厦门 泉州 福州 武汉 石家庄 保定 长沙 合肥 西安 南昌 沈阳 大连 南宁 昆明 "
             "太原 哈尔滨 贵阳 长春 呼和浩特 乌鲁木齐 兰州 海口 三亚 银川 西宁 拉萨", "市")
    | _words("华东 华南 华北 华中 西南 西北 东北 全国 境外 海外 地区")
    # carriers, alone or with their service word (EMS, SF: in _CONTRACT_LATIN below)
    | _words("中通 圆通 韵达 申通 极兔 顺丰 邮政 中国邮政 京东 德邦 百世 宅急送 菜鸟 丰网 "
             "安能 优速", "快递", "速递", "速运", "物流", "快运")
    | _words("快递 物流 速递 快运 同城 跨境")
    # categories
    | _words("服饰 服装 鞋靴 箱包 数码 手机 电脑 美妆 个护 食品 酒水 家居 家纺 家具 母婴 玩具 "
             "生鲜 图书 家电 运动 户外 宠物 珠宝 配饰 医药 保健 汽车 百货 日用 办公 其他 其它")
    # order statuses; complaint statuses; complaint types; satisfaction; tiers; channels
    | _words("已创建 已下单 待发货 已发货 发货 已揽收 揽收 运输中 在途 派送中 派件中 已签收 签收 "
             "已送达 送达 异常 已退回 退回 已退货 退货 已取消 取消 已退款 退款")
    | _words("已解决 解决 已升级 升级 重新打开 重开 处理中 待处理 已关闭 关闭")
    | _words("延误 物流延误 催件 催揽 丢件 破损 错发 错送 虚假发货 质量 质量问题 重量 "
             "重复扣款 服务态度 态度 海关 清关 投诉 售后")
    | _words("满意 不满意 非常满意 一般 很差 好评 中评 差评")
    | _words("普通 会员 银卡 金卡 白金 钻石 高级")
    | _words("电话 热线 微信 网页 网站 官网 小程序 客服 邮件 短信 门店")
) if len(w) <= _MAX_KEPT_CJK)
# Latin-script words (romanised names: "Zhang Wei", "LI NA", "Ou-Yang", "ZhangWei") take the
# same rule as CJK runs. Letters: ASCII, Latin-1 and Latin Extended (pinyin's tone letters
# ǎ ü), combining accents, full-width letters as typed by Chinese IMEs. A token is letters,
# digits, "_" and "-"; one with a digit is an identifier, a number or a timestamp (o-123,
# m0008, ev-audit-D5, 2026-11-02T10:00:00+08:00, 1e5) and stays. Letter-only tokens
# joined by spaces or a middle dot form a run, judged whole like a CJK run: it is kept
# only if each of its words (split at "-", "_" and camelCase humps) is a word of the
# contract or a single letter (an initial names nobody, "x" is a key); otherwise it
# becomes "<text N chars>", N its letters. Our own markers are never touched.
_LATIN = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u0300-\u036f\u1e00-\u1eff\uff21-\uff3a\uff41-\uff5a"
# A letter-only token (no letter, digit, "_" or "-" on either side: a token with a digit
# never matches), then more joined by spaces or a middle dot. Linear: a token can only
# start at a token's start; a character class first lets the scan skip to a letter. Our
# markers come first, so their words are never read.
_LATIN_WORD_TOKEN = (rf"[{_LATIN}_-](?<![{_LATIN}0-9\uff10-\uff19_-].)[{_LATIN}_-]*"
                     rf"(?![{_LATIN}0-9\uff10-\uff19_-])")
_LATIN_RUN = re.compile(
    rf"<text \d+ chars>|{re.escape(_TEXT_OMITTED)}"
    rf"|{_LATIN_WORD_TOKEN}(?:[ \t\u00a0\u3000\u00b7]+{_LATIN_WORD_TOKEN})*")
_LATIN_WORD = re.compile(f"[{_LATIN}]+")
_CAMEL_HUMPS = re.compile("[A-Z]+(?![a-z])|[A-Z]?[a-z]+")


def _contract_fields_and_enums() -> set[str]:
    """Every JSON name and string enum value of the event contract, read off its models:
    the tag field and tags, the field names, the Literal values (statuses, intents)."""
    words: set[str] = set()

    def walk(info) -> None:
        if isinstance(info, msgspec.inspect.UnionType):
            for t in info.types:
                walk(t)
        elif isinstance(info, msgspec.inspect.StructType):
            words.update((info.tag_field, info.tag) if info.tag_field else ())
            for f in info.fields:
                words.add(f.encode_name)
                walk(f.type)
        elif isinstance(info, msgspec.inspect.LiteralType):
            words.update(v for v in info.values if isinstance(v, str))
    walk(msgspec.inspect.type_info(Event))
    return words


def _latin_vocabulary(*groups) -> frozenset[str]:
    """Lower-cased words, with the parts of compounds (out_for_delivery, key_account)."""
    words = {w.lower() for g in groups for w in (g.split() if isinstance(g, str) else g)}
    return frozenset(words | {p for w in words for p in re.split("[_-]", w) if p})


# The contract's Latin words: its field names and enum values (from the models above, so
# they follow the contract), JSON's literals, and the Latin forms of its menu values that
# are free strings in the models: channels, customer tiers (HIGH_TIERS too), satisfaction,
# carriers' codes and English category names. As with _CONTRACT_WORDS, a word missing here
# costs readability, never privacy. Left out on purpose: pinyin place and carrier names
# (Hefei, Wuxi, Jilin, Yunda read as He Fei, Wu Xi, Ji Lin, Yun Da) and any word that is a
# pinyin syllable (NaN: Nan); tests/test_dead_letter_pii.py checks no surname is here.
_CONTRACT_LATIN: frozenset[str] = _latin_vocabulary(
    _contract_fields_and_enums(), HIGH_TIERS,
    "true false null none infinity",
    "app hotline wechat web website phone email sms miniprogram store online",
    "normal vip svip silver member regular premium",
    "satisfied dissatisfied unsatisfied neutral",
    "SF EMS ZTO YTO STO JD JT DHL UPS FedEx TNT Best Deppon express logistics post china courier",
    "apparel clothing fashion shoes bags digital electronics computers beauty cosmetics food "
    "grocery home furniture textiles baby toys fresh books appliances sports outdoor pets "
    "jewelry accessories health medicine auto office general daily",
)
# ... and in ``detail`` also the words of the messages it holds: msgspec's (its validation
# and JSON errors), the timestamp checks' (riskwatch.events.epoch_of) and the pipeline's
# (too far ahead in time), so they stay readable while the value they quote is judged
# like an excerpt. An internal error's message is judged the same way (its type is kept).
_MESSAGE_LATIN: frozenset[str] = _CONTRACT_LATIN | _latin_vocabulary(
    # msgspec: "Expected `str`, got `int`", "Object missing required field `ts`", "Invalid
    # enum value 'x'", "JSON is malformed: invalid character (byte 5)", "Input data was
    # truncated", "Expected `str` of length <= 256", "that's a multiple of", "- at `$.x`"
    "expected got of length at least most to with timezone component that multiple matching "
    "regex str int float bool array object bytes dict list invalid enum value epoch encoded "
    "datetime date time uuid decimal string duration object missing required field contains "
    "unknown json is malformed byte input data was truncated character characters in unicode "
    "escape escaped number utf surrogate pair trailing comma or keys must be strings unexpected "
    "end hex maximum recursion depth exceeded",
    # riskwatch.events: "timestamp '…' has no UTC offset (RFC 3339 needs one)", "is not RFC
    # 3339: time out of range (expected YYYY-MM-DDTHH:MM:SS[.fraction] then Z or ±HH:MM,
    # e.g. …)", "no such date", "a string is not UTF-8 (invalid start byte)", "no JSON value"
    "timestamp has no utc offset rfc needs one not yyyy mm ddthh ss fraction then hh out range "
    "such start continuation",
    # streams.pipeline: "'…' is 3.2 days ahead of the wall clock (…); more than
    # --max-time-jump-seconds 259200 (0: no limit, for a file with a longer gap)"
    "days ahead the wall clock latest event more than max jump seconds limit for file longer gap",
)


def _known_latin(word: str, vocabulary: frozenset[str]) -> bool:
    if len(word) == 1:
        return True
    if not word.isascii():
        word = unicodedata.normalize("NFKC", word)   # full-width letters
    if word.lower() in vocabulary:
        return True
    humps = _CAMEL_HUMPS.findall(word)   # orderStatus, eventId; ZhangWei is two names
    return (len(humps) > 1 and "".join(humps) == word
            and all(len(h) == 1 or h.lower() in vocabulary for h in humps))


# Verdicts on runs seen before, per vocabulary: field names and enum values come back in
# every dead letter. Bounded: a producer may send any words.
_VERDICTS: dict[frozenset[str], dict[str, str]] = {}


def _latin_run(run: str, vocabulary: frozenset[str]) -> str:
    seen = _VERDICTS.setdefault(vocabulary, {})
    verdict = seen.get(run)
    if verdict is None:
        words = _LATIN_WORD.findall(run)
        verdict = run if all(_known_latin(w, vocabulary) for w in words) \
            else f"<text {sum(map(len, words))} chars>"
        if len(seen) < 4096:
            seen[run] = verdict
    return verdict


def _blank_latin(s: str, vocabulary: frozenset[str] = _CONTRACT_LATIN) -> str:
    """``s`` with every run of Latin words that is not made of ``vocabulary``'s words
    replaced by its length; tokens with a digit and our own markers are kept."""
    def run(m: re.Match[str]) -> str:
        r = m.group()
        return r if r[0] == "<" else _latin_run(r, vocabulary)   # "<": a marker
    return _LATIN_RUN.sub(run, s)


_EXCERPT_BYTES = 300
# What may continue a number past the excerpt's end (IDs end in X; groups are split by
# spaces or dashes; full-width forms as typed by Chinese IMEs, which the masker folds),
# and how far: a complaint text's length (riskwatch.events).
_NUMBER_CHARS = "0123456789Xx -０１２３４５６７８９Ｘｘ－\u3000\t~、·()"
_MAX_NUMBER_RUN = 20_000
# How far a line is read for text values and numbers, and how far its escapes are
# decoded: an escape is at most 6 characters for one, and the masker's numbers are far
# shorter than 200 bytes.
_ESCAPED_REACH = 6 * (_EXCERPT_BYTES + _MAX_NUMBER_RUN)
_UNESCAPED_REACH = 6 * (_EXCERPT_BYTES + 200)


def _decode_run(m: re.Match[str]) -> str:
    run = _BACKSLASHES.sub(r"\\", m.group()).replace("\\/", "/")
    s = run.encode().decode("unicode_escape")
    if _SURROGATE.search(s):   # pairs joined; a lone one cannot be encoded: U+FFFD
        s = s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if '"' in s or "\\" in s:  # a quote or backslash would change where strings end
        s = s.replace("\\", "\\\\").replace('"', '\\"')
    return s


def _unescape(s: str) -> str:
    """``s`` with its JSON escapes decoded (a quote or backslash stays escaped)."""
    return _ESCAPE_RUN.sub(_decode_run, s) if "\\" in s else s


def _string_end(s: str, start: int) -> tuple[int, bool]:
    """Where the JSON string opened at ``s[start]`` ends, and whether it is closed."""
    i = start + 1
    while (i := s.find('"', i)) >= 0:
        j = i
        while s[j - 1] == "\\":
            j -= 1
        if (i - j) % 2 == 0:   # not escaped
            return i + 1, True
        i += 1
    return len(s), False


def _value_end(s: str, start: int) -> tuple[int, bool]:
    """Where the JSON value at ``s[start]`` ends, and whether it was found whole."""
    head = s[start:start + 1]
    if head == '"':
        return _string_end(s, start)
    if head in ("[", "{"):
        depth, pos = 0, start
        while (m := _QUOTE_OR_BRACKET.search(s, pos)) is not None:
            if m.group() == '"':
                pos, whole = _string_end(s, m.start())
                if not whole:
                    break   # a string cut off: so is the value
                continue
            depth += 1 if m.group() in "[{" else -1
            pos = m.end()
            if depth == 0:
                return pos, True
        return len(s), False
    m = _JSON_SCALAR.match(s, start)
    return (m.end(), True) if m else (len(s), False)   # not JSON: drop to the end


def _omit_text(s: str) -> str:
    """``s`` (JSON that may not parse) with the value of every ``"text"`` key omitted."""
    out, pos = [], 0
    while (m := _TEXT_KEY.search(s, pos)) is not None:
        end, whole = _value_end(s, m.end())
        out.append(s[pos:m.end()])
        if end > m.end():
            out.append(f'"{_TEXT_OMITTED}"' if whole else f'"{_TEXT_OMITTED}')
        pos = end
    out.append(s[pos:])
    return "".join(out)


def _long_run(m: re.Match[str]) -> str:
    run = m.group()
    if run in _CONTRACT_WORDS:
        return run
    words = _IDEOGRAPHS.findall(run)
    if sum(map(len, words)) <= _MAX_KEPT_CJK and all(w in _CONTRACT_WORDS for w in words):
        return run
    return f"<text {sum(map(len, words))} chars>"


# Letters of every other script (Hangul, kana, Cyrillic, Greek, Arabic, Thai, ...): the
# contract has no word in them, so any run of them is a name or free text; words joined by
# spaces, a middle dot or the katakana one ("ヤマダ・タロウ") form one run.
_OTHER_LETTER = rf"(?:(?![{_LATIN}{_CJK}])[^\W\d_])+"
_OTHER_SCRIPT_RUN = re.compile(
    rf"{_OTHER_LETTER}(?:[ \t\u00a0\u3000\u00b7\u30fb]+{_OTHER_LETTER})*")
_OTHER_LETTERS = re.compile(_OTHER_LETTER)


def _other_script_run(m: re.Match[str]) -> str:
    return f"<text {sum(map(len, _OTHER_LETTERS.findall(m.group())))} chars>"


# A mobile number glued to letters ("ZhangWei13812345678", "abc13812345678"): the masker
# reads such a token as an identifier (order and tracking numbers look like it), so it
# stays in complaint texts. A dead letter is read by people and never joined on, so here
# an 11-digit mobile after letters is masked as the masker masks one.
_GLUED_MOBILE = re.compile(r"(?<=[A-Za-z])(1[3-9][0-9])[0-9]{4}([0-9]{4})(?![0-9])")


def _blank_free_text(s: str, latin: frozenset[str] = _CONTRACT_LATIN) -> str:
    """``s`` with every run of CJK characters that is not made of words of the contract
    (more than four ideographs: never), every run of Latin words not made of words of
    ``latin``, and every run of letters of another script, replaced by its length; a
    mobile number glued to letters masked."""
    s = _GLUED_MOBILE.sub(r"\1****\2", _CJK_RUN.sub(_long_run, s))
    if not s.isascii():   # the common case, a dead letter of ASCII only, skips the scan
        s = _OTHER_SCRIPT_RUN.sub(_other_script_run, s)
    return _blank_latin(s, latin)


def _scrub(s: str, latin: frozenset[str] = _CONTRACT_LATIN) -> str:
    """A short field of a dead letter: escapes decoded, masked, free text blanked."""
    return _blank_free_text(mask_pii(_unescape(s)), latin)


def _drop_text(value):
    """``value`` (parsed JSON) with the value of every ``text`` key omitted."""
    if isinstance(value, dict):
        return {k: _TEXT_OMITTED if k == "text" else _drop_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_drop_text(v) for v in value]
    return value


_MASKED_SHORT: dict[str, str] = {}


def mask_short(value: str | None) -> str | None:
    """:func:`mask_pii` for short menu-like fields (a complaint's channel, tier and
    declared type; a dead letter's event type), remembered: they take a handful of values
    ("app", "12315", "vip", "order"), so each is masked once.

    >>> mask_short("order"), mask_short("手机13912345678")
    ('order', '手机139****5678')
    """
    if value is None:
        return None
    masked = _MASKED_SHORT.get(value)
    if masked is None:
        masked = mask_pii(value)
        if len(_MASKED_SHORT) < 4096:   # bounded: a producer may send free text here
            _MASKED_SHORT[value] = masked
    return masked


def _excerpt(raw: bytes) -> str:
    raw = raw.rstrip(b"\r\n")   # a replayed line's own line break is not the message's
    try:
        # JSON that parses: drop every "text" value, whatever its type or key spelling.
        # Objects and arrays only; a bare string may be a complaint text itself.
        parsed = orjson.loads(raw) if raw[:1] in (b"{", b"[") else None
    except orjson.JSONDecodeError:
        parsed = None
    if parsed is not None:
        raw = orjson.dumps(_drop_text(parsed))
    # A line that does not parse loses its text values (the key however it is spelt),
    # then escapes are decoded before the masker looks (an escaped digit or separator).
    # Text values go first, so their escapes are never decoded (a Python producer's
    # ensure_ascii line is mostly escapes: 20k of them cost 4 ms).
    line = raw[:_ESCAPED_REACH].decode("utf-8", errors="replace")
    if parsed is None:
        line = _omit_text(line)
    raw = (_unescape(line[:_UNESCAPED_REACH]) + line[_UNESCAPED_REACH:]).encode()
    # Masked before it is cut: a number cut by the excerpt's end (an ID after 15 digits,
    # "13812345678139…" of two mobiles typed back to back) is no longer found whole. So
    # the window reaches to the end of a number crossing the cut, is masked, then cut.
    end = _EXCERPT_BYTES
    while end < len(raw) and raw[end] & 0xC0 == 0x80:
        end += 1   # finish a character the cut fell into
    tail = raw[end:end + _MAX_NUMBER_RUN].decode("utf-8", errors="replace")
    end += len(tail[:len(tail) - len(tail.lstrip(_NUMBER_CHARS))].encode())
    # Masked and blanked before the cut: a run of text cut in two is still a long run.
    text = _blank_free_text(mask_pii(raw[:end].decode("utf-8", errors="replace")))
    if len(raw) > _EXCERPT_BYTES:
        text = text.encode()[:_EXCERPT_BYTES].decode("utf-8", errors="ignore")
        if (i := text.rfind("<text ")) >= 0 and ">" not in text[i:]:
            text = text[:i]   # never leave half a placeholder
        text += "…"
    return text


def _letter_id(source: str, partition: int | None, offset: int, index: int) -> str:
    # Deterministic: a re-delivered message yields the same id, so sinks can dedup.
    key = f"{source}|{partition}|{offset}|{index}".encode()
    return hashlib.blake2b(key, digest_size=10).hexdigest()


def dead_letter(bad: BadEvent, raw: bytes, *, source: str, partition: int | None,
                offset: int, recorded_at: str) -> dict:
    """Build the dead-letter record for one bad event of a message or line."""
    return {
        "dead_letter_id": _letter_id(source, partition, offset, bad.index),
        "ts": recorded_at,
        "source": source,
        "partition": partition,
        "offset": offset,
        "index": bad.index,
        "reason": bad.reason,
        # msgspec's message quotes the bad value ("Invalid enum value '…' - at `$.status`",
        # "timestamp '…' is not RFC 3339"): masked and blanked like the excerpt, the
        # words of the messages themselves kept (_MESSAGE_LATIN).
        "detail": _scrub(bad.detail, _MESSAGE_LATIN),
        # Id and type are the producer's strings: a mobile number typed as one is masked
        # here like in the excerpt (dead letters are read by people, never joined on).
        "event_id": None if bad.event_id is None else _scrub(str(bad.event_id)),
        "event_type": None if bad.event_type is None
        else _blank_free_text(mask_short(_unescape(bad.event_type))),
        "payload_excerpt": _excerpt(raw),
    }


def internal_error_letter(exc: BaseException, *, source: str, partition: int | None,
                          offset: int, recorded_at: str) -> dict:
    """Dead letter for an event whose processing raised: no payload, just the error."""
    return {
        "dead_letter_id": _letter_id(source, partition, offset, -1),
        "ts": recorded_at,
        "source": source,
        "partition": partition,
        "offset": offset,
        "index": 0,
        "reason": "internal error",
        # The type is code; the message may quote anything (a payload's value).
        "detail": f"{type(exc).__name__}: {_scrub(str(exc), _MESSAGE_LATIN)}"[:500],
        "event_id": None,
        "event_type": None,
        "payload_excerpt": "",
    }
