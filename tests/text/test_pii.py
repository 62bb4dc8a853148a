"""PII masking: labelled-set recall, exact masks, hard negatives, the scanner, speed."""

from __future__ import annotations

import hashlib
import json
import pathlib
import time

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streams.text.lexicon import COMPOUND_SURNAMES
from streams.text.pii import (
    SCANNED_KINDS,
    _id18_checksum_ok,
    _luhn_ok,
    contains_unmasked_pii,
    evaluate_masker,
    find_pii,
    mask_pii,
    pseudonymise,
)

DATA = pathlib.Path(__file__).parent / "data" / "pii_labelled.jsonl"
STRICT = ("mobile", "id", "card", "email")


def _records() -> list[dict]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line]


def test_labelled_set_is_large_and_varied():
    recs = _records()
    assert len(recs) >= 200
    kinds = [p["kind"] for r in recs for p in r["pii"]]
    for kind in (*STRICT, "address", "name"):
        assert kinds.count(kind) >= 15, kind
    assert sum(not r["pii"] for r in recs) >= 50      # hard negatives
    for r in recs:
        for p in r["pii"]:
            assert p["value"] in r["text"]


def test_labelled_recall_and_false_positives():
    report = evaluate_masker(DATA)
    print("\nPII masker on", DATA.name, f"({report['n_texts']} texts, "
          f"{report['n_negative_texts']} without PII)")
    for kind, n in report["support"].items():
        print(f"  {kind:9s} n={n:3d} recall={report['recall'][kind]:.3f} "
              f"precision={report['precision'].get(kind, float('nan')):.3f}")
    print("  false positives:", report["false_positives"] or "none",
          f"fp_text_rate={report['fp_text_rate']:.3f}",
          f"fp_negative_rate={report['fp_negative_rate']:.3f}")
    for miss in report["misses"]:
        print("  MISS", miss)
    for kind in STRICT:
        assert report["recall"][kind] >= 0.99, kind
    assert report["recall"]["address"] >= 0.9
    assert report["recall"]["name"] >= 0.9
    assert report["fp_negative_rate"] <= 0.02


# (text, expected masked text): one behaviour per row.
MASKS = [
    # mobile: plain, grouped, prefixed, full-width, Chinese numerals, phone words glued on
    ("电话13812345678", "电话138****5678"),
    ("电话 138-1234-5678 白天", "电话 138****5678 白天"),
    ("+86 138 1234 5678", "+86 138****5678"),          # the country prefix is kept
    ("008613812345678", "0086138****5678"),
    ("８６１３８１２３４５６７８", "８６138****5678"),
    ("号码幺三八一二三四五六七八", "号码138****5678"),
    ("tel13812345678", "tel138****5678"),
    ("号码138.1234.5678", "号码138****5678"),
    ("电话138—1234—5678", "电话138****5678"),                # IME dash
    ("我的号1 3 8 1 2 3 4 5 6 7 8", "我的号138****5678"),     # spelt out to dodge filters
    ("电话壹叁捌壹贰叁肆伍陆柒捌", "电话138****5678"),
    # resident ID: valid checksum; X; checksum wrong but region+date valid; 15-digit;
    # truncated but after 身份证
    ("身份证11010519491231002X", "身份证110***********002X"),
    ("证件110105194912310021", "证件110***********0021"),
    ("证件110105194912310022", "证件110***********0022"),
    ("旧证110105491231002", "旧证110********1002"),
    ("身份证号44030519900307999", "身份证号440**********7999"),
    # bank card: Luhn + card BIN, grouped, Luhn-failing after a card cue
    ("退到6222021234567890128", "退到6222 **** **** 0128"),
    ("卡 4111-1111-1111-1111 ", "卡 4111 **** **** 1111 "),
    ("银行卡6222021234567890123", "银行卡6222 **** **** 0123"),
    # landline, email, address, name
    ("座机0755-88889999", "座机0755-****9999"),
    ("座机0755.8888.9999", "座机0755-****9999"),
    ("电话010.8765.4321转8", "电话010-****4321转8"),
    ("邮箱zhang(at)qq.com", "邮箱z***@qq.com"),
    ("护照号码：E12345678", "护照号码：E*****678"),
    ("邮箱Zhang.San@example.com谢谢", "邮箱Z***@example.com谢谢"),
    ("广东省深圳市南山区科技园南路88号3栋501室，快点", "广东省深圳市南山区***，快点"),
    ("住在阳光小区3栋2单元501，", "住在***，"),
    ("收件人：欧阳娜娜，", "收件人：欧阳*，"),
    ("收件人写的李明，", "收件人写的李*，"),
    # numbers typed back to back: one digit run that splits exactly into numbers
    ("两个号码1381234567813923456789", "两个号码138****5678139****6789"),
    ("身份证11010519491231002X15012349876", "身份证110***********002X150****9876"),
    # ... and a mobile typed against an order number: the run's ends are checked
    ("手机13812345678202611241234567890是订单", "手机138****5678202611241234567890是订单"),
    ("麻烦回电2026112412345678901215012349876", "麻烦回电20261124123456789012150****9876"),
    ("前面是订单号，回电2026112412345678901215012349876", "前面是订单号，回电20261124123456789012150****9876"),
    # several kinds in one text
    ("我叫王小明，13812345678，z@x.cn", "我叫王*，138****5678，z***@x.cn"),
]


@pytest.mark.parametrize(("text", "masked"), MASKS)
def test_masks(text, masked):
    assert mask_pii(text) == masked


# Texts that must come out unchanged.
UNCHANGED = [
    "顺丰单号SF1234567890123一直不动",             # tracking number glued to letters
    "京东JDVA13812345678物流停了",                 # an 11-digit tail that looks like a phone
    "订单号202611021234567890一直没发货",           # 18 digits: no valid date, no province
    "淘宝订单号3512345678901234567",               # 19 digits after an order cue, not 62...
    "金额299.00元扣了两次，已打12315",              # amounts and hotlines
    "2026-11-02 13:45下单，11月3号到",             # dates and times
    "12345678901这个号码是空号吧",                  # 11 digits but not a mobile prefix
    "评分0.13812345678",                           # the fraction of a decimal
    "2026.11.02到货，版本1.2.3",                    # dotted dates and versions
    "2026.11.25下单，12.25到货，版本v2.3.1",          # ... with the 0 of no area code
    "退款1234.56元，运费12.50元，共0.5折",            # amounts and decimals
    "单价0755.12元，评分0.12345678，比例0.1234.5678",  # ... even after a 0
    "服务器192.168.1.100和10.0.0.1，旧的010.000.001.100",   # IP addresses
    "2026/11/25下单，第0755.1234.5678.9版",            # a date; more groups than a phone
    "评分86.755，比例86.75/1234，版本86.755.1234，服务器10.86.75.1",   # 86 before a dot
    "第+86.755.1234.5678.9版，旧版1.86.755.1234.5678",   # ... not a phone's shape
    "取件码8-2-1503，第3栋的快递柜",                # pickup code, a lone building
    "说好3号到，放在5楼门口",                        # dates and floors are not addresses
    "收件人是我妈，联系人一直联系不上，我叫了快递员",  # name cues without a name
    "快递小哥姓王，态度很好",                       # a surname alone identifies nobody
    "交易号4200001234202611021234567890",         # too long for any kind
    "支付流水号4200001234202611245678901234567",   # ... and splits into no numbers
    "交易号2026112422001456781381234567890",       # a mobile-like tail after an order cue
    "支付宝交易号：2026112422001456781381234567890",  # ... also after a colon
]


@pytest.mark.parametrize("text", UNCHANGED)
def test_hard_negatives_unchanged(text):
    assert find_pii(text) == []
    assert mask_pii(text) == text


def test_checksum_helpers():
    assert _id18_checksum_ok("11010519491231002X")
    assert not _id18_checksum_ok("110105194912310021")
    assert _luhn_ok("4111111111111111")
    assert not _luhn_ok("4111111111111112")


def test_spans_index_the_original_text():
    text = "电话：１３８ １２３４ ５６７８。"
    (span,) = find_pii(text)
    assert (span.kind, text[span.start:span.end]) == ("mobile", "１３８ １２３４ ５６７８")


def test_scanner_sees_through_json_escapes():
    raw = {"text": "电话13812345678\n身份证11010519491231002X"}
    for dump in (json.dumps(raw), json.dumps(raw, ensure_ascii=False)):
        assert contains_unmasked_pii(dump)
    masked = {"text": mask_pii(raw["text"])}
    assert not contains_unmasked_pii(json.dumps(masked))
    assert not contains_unmasked_pii(json.dumps(masked, ensure_ascii=False))


def test_masker_reaches_numbers_inside_json_excerpts():
    # dead letters carry raw JSON: "\n" or "\u8bdd" right before a number is not a code
    assert "13812345678" not in mask_pii('{"detail": "line\\n13812345678"}')
    assert "13812345678" not in mask_pii('{"t": "\\u7535\\u8bdd13812345678"}')


def test_scanner_kinds():
    assert SCANNED_KINDS == {"mobile", "id", "card"}
    assert contains_unmasked_pii("卡号6222021234567890128")
    assert not contains_unmasked_pii("邮箱a@b.com")          # email is not scanned by default
    assert contains_unmasked_pii("邮箱a@b.com", kinds=frozenset({"email"}))


_PIECES = st.sampled_from([
    "13812345678", "138 1234 5678", "+86", "0086", "11010519491231002X", "6222021234567890128",
    "4111 1111 1111 1111", "SF", "JDVA", "订单", "卡号", "身份证", "电话", "，", " ", "-", ".",
    "0", "1", "12", "123", "1234", "5678", "2026", "天", "号", "栋", "路", "室", "收件人", "张三",
    "@", "a", "qq.com", "X", "１３８", "幺", "三", "八", "+86 ", "广东省", "南山区", "小区",
    "3-2-501", "单元", "我叫", "name:", "Zhang", "0755", "88889999", "@b.cn", "　", "－",
    "—", "_", ".", "(at)", "壹", "叁", "捌", "护照", "E1234567",
    "~", "、", "·", "\t", "   ", "(", ")", "（", "）", "#", "。", " dot ", " at ", "一", "大厦",
    "我姓张", "和", "李娜", "快递员", "解放",
])


@settings(max_examples=500, deadline=None)
@given(st.lists(_PIECES, max_size=16).map("".join))
# Found by this test on 2026-11-25: a mobile at the start of a long run was masked and
# the 18 digits left after it passed Luhn as a card; the masked text is now searched again.
@example("1888899998888999988889999")
@example("1234 dot 南山区１３８一壹124111 1111 1111 1111大厦88889999SF·")
@example("大厦.一3-2-501叁6222021234567890128路电话我叫")
@example("我姓张，我叫张三")   # one name found twice (2026-11-25): masked as 张*张*
@example(".大厦0086单元14111 1111 1111 1111E1234567栋12")   # two addresses widened into each other
def test_masked_output_never_holds_scanned_pii(text):
    # Random concatenations of numbers, cues and separators: whatever the masker makes of
    # them, the scanner must find nothing in its output, raw or as JSON. (An offline run
    # of 600,000 such strings found no counter-example before the one above.)
    spans = find_pii(text)
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:])), spans   # sorted, apart
    masked = mask_pii(text)
    assert not contains_unmasked_pii(masked)
    for dump in (json.dumps({"t": masked}), json.dumps({"t": masked}, ensure_ascii=False)):
        assert not contains_unmasked_pii(dump)


def test_masking_is_idempotent_on_realistic_text():
    # On garbage such as "6222021234567890128@b.cn" a second pass may mask a little more
    # (the card's last digits become an email's local part); never on real complaints.
    for text in [r["text"] for r in _records()] + [m for _, m in MASKS] + UNCHANGED:
        once = mask_pii(text)
        assert mask_pii(once) == once, text


def test_pseudonymise_is_keyed_and_stable():
    p = pseudonymise("13812345678", key=b"k1")
    assert p == pseudonymise("13812345678", key=b"k1")
    assert len(p) == 32 and int(p, 16) >= 0
    assert p != pseudonymise("13812345678", key=b"k2")
    assert p != pseudonymise("13812345679", key=b"k1")
    assert p != hashlib.sha256(b"13812345678").hexdigest()[:32]   # not a bare hash
    with pytest.raises(ValueError):
        pseudonymise("x", key=b"")


def test_speed_per_text():
    texts = [r["text"] for r in _records()]
    complaint = ("快递一直没到，说好三天到现在都一个星期了，"
                 "物流信息一直不更新，到底怎么回事，太慢了吧")
    with_pii = "收件人张三电话13812345678，地址广东省深圳市南山区科技园南路88号，三天了还没送到"
    figures = {}
    for name, batch in (("labelled set", texts), ("complaint w/o PII", [complaint] * 200),
                        ("complaint with PII", [with_pii] * 200)):
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for t in batch:
                mask_pii(t)
            best = min(best, (time.perf_counter() - t0) / len(batch) * 1e6)
        figures[name] = best
    t0 = time.perf_counter()
    for _ in range(2000):
        sum(range(1000))
    ref = (time.perf_counter() - t0) / 2000 * 1e6
    print("\nmask_pii us/text:", {k: round(v, 1) for k, v in figures.items()},
          f"(this machine: sum(range(1000)) = {ref:.1f} us)")
    # generous bound: catches a regex gone quadratic, not a busy machine
    assert figures["complaint w/o PII"] < 200


def test_numbers_typed_back_to_back_at_the_longest_text():
    # A complaint text may hold 20,000 characters (riskwatch.events): every one of the
    # 1,818 numbers of such a run is masked (an early version recursed per number and
    # raised RecursionError here).
    run = "13812345678" * 1818
    assert mask_pii(run) == "138****5678" * 1818


def test_pathological_input_is_linear():
    # Growth, not a wall-clock budget (the machine may be busy): four times the input
    # must cost well under sixteen times the time, which catastrophic backtracking
    # (quadratic or worse) would take. CPU time of this thread, best of five: time the
    # scheduler gives to other processes on a loaded machine does not count.
    def best_cpu_time(text: str) -> float:
        times = []
        for _ in range(5):
            t0 = time.thread_time()
            mask_pii(text)
            times.append(time.thread_time() - t0)
        return min(times)

    for unit, n in (("1 ", 5000), ("1-", 5000), ("a", 5000), ("路1", 2500), ("收件人", 1250),
                    ("13812345678", 450)):   # 20k digits of mobiles typed back to back
        tail = "@" if unit == "a" else ""
        small, large = best_cpu_time(unit * n + tail), best_cpu_time(unit * 4 * n + tail)
        assert large < 10 * max(small, 1e-4), (unit, small, large)


# Mobiles grouped 3-4-4 by slashes or dots (also spaced, also full width) are masked; dates,
# amounts, versions and ratios written with the same separators are not.
@pytest.mark.parametrize(("text", "masked"), [
    ("电话139/1234/5678", "电话139****5678"),
    ("电话139.1234.5678，快点", "电话139****5678，快点"),
    ("手机 139 / 1234 / 5678", "手机 139****5678"),
    ("手机139. 1234. 5678", "手机139****5678"),
    ("回电１３９／１２３４／５６７８", "回电139****5678"),
    ("电话139-1234-5678或139 1234 5678", "电话139****5678或139****5678"),
])
def test_slash_and_dot_separated_mobiles_are_masked(text, masked):
    assert mask_pii(text) == masked
    assert contains_unmasked_pii(text) and not contains_unmasked_pii(masked)


@pytest.mark.parametrize("text", [
    "2026/11/24下的单，2026/11/24 13:45还没到",
    "11/24到货，1/2的东西坏了",
    "金额1399.00元，运费13.50元，共1412.50/3件",
    "版本13.1234.5678不是电话",                 # 2 + 4 + 4 digits
    "比例139/1234/56789",                       # a last group of 5 digits
    "编号1139/1234/5678",                       # 4 digits first
    "2026.11.24到货，版本1.2.3",
])
def test_slash_and_dot_dates_and_amounts_are_not_mobiles(text):
    assert find_pii(text) == []


# Names after 我是 / 找 / 联系 / 本人是 (the simulator's 我是{name} and 找{name}), in each
# punctuation style it writes (，！ . ! ? space, end of text). Every form the simulator
# writes (riskwatch/simulator/texts.py, _pii_sentence) is checked by the test after next.
@pytest.mark.parametrize(("text", "masked"), [
    ("我是田伟，快递三天没动", "我是田*，快递三天没动"),
    ("快递三天没动，找田伟!要求退款", "快递三天没动，找田*!要求退款"),
    ("找田伟要求退款", "找田*要求退款"),
    ("破损了 我是王秀英 请尽快处理", "破损了 我是王* 请尽快处理"),
    ("我是郭一鸣。", "我是郭*。"),
    ("请联系欧阳娜娜！", "请联系欧阳*！"),
    ("本人是李娜，电话13812345678", "本人是李*，电话138****5678"),
    ("退款找马强", "退款找马*"),
    ("我是王芳电话13812345678", "我是王*电话138****5678"),
])
def test_names_after_weak_cues_are_masked(text, masked):
    assert mask_pii(text) == masked


@pytest.mark.parametrize("text", [
    "我是不是被骗了", "我是在京东买的", "我是江苏的", "我是第一次买", "我是会员",
    "找不到快递员", "找了三天", "找客服没用", "找申通也没用", "找方法解决", "找商家退款",
    "联系方式给你了", "联系商家没人理", "联系不上快递员", "我是买家",
])
def test_everyday_phrases_after_weak_cues_are_kept(text):
    assert find_pii(text) == []


def test_every_simulator_name_form_is_masked():
    import random

    from riskwatch.simulator.pii import GIVEN_NAMES, SURNAMES
    from riskwatch.simulator.texts import TextComposer
    rng = random.Random(3)
    composer = TextComposer(random.Random(5), 1.0)
    for _ in range(400):
        sentence = composer._pii_sentence("name")
        name = next(s + g for s in SURNAMES for g in GIVEN_NAMES if s + g in sentence)
        for text in (sentence, "快递破损，" + sentence + "！要求退款", sentence + " 要求退款",
                     "破损" + rng.choice("，,!。") + sentence + rng.choice(("", "，", "!", "？"))):
            assert name not in mask_pii(text), text


# Names without a cue word: people named by their role (快递员, 骑手, 客服, 店主 ...) or
# relation to the writer (我老公, 我妈 ...), a parcel handed to someone (寄给, 交给 ...), a
# name before a greeting, title or signature (你好, 先生, 同学, 签收, 冒领), someone called
# (给…打电话); a name found once is masked wherever it recurs.
NAMES_WITHOUT_CUE_WORDS = [
    ('快递员王小明态度很差，把包裹直接扔在门口', '王小明'),
    ('派件员刘洋说放驿站了，可我根本没收到', '刘洋'),
    ('配送员赵强电话一直不接', '赵强'),
    ('骑手孙悦把汤洒了一半', '孙悦'),
    ('客服王芳答应退款，到现在也没退', '王芳'),
    ('我老公李建国的快递被别人拿走了', '李建国'),
    ('收件人是我妈陈秀英，她说没收到', '陈秀英'),
    ('张伟你好，我的包裹三天没动了', '张伟'),
    ('周杰伦同学的快递被别人签收了', '周杰伦'),
    ('寄给欧阳娜娜的包裹破损了', '欧阳娜娜'),
    ('我给刘德华打电话也没人接', '刘德华'),
    ('快递员说张伟签收了，可张伟根本不在家', '张伟'),
    ('店主黄海涛拒绝退货', '黄海涛'),
    ('快递小哥王强人很好，就是公司太慢', '王强'),
    ('网点负责人马超说没办法', '马超'),
    ('司机杨勇把货卸在路边', '杨勇'),
    ('我朋友郭靖帮我代收的', '郭靖'),
    ('我妈陈静说门口没有快递', '陈静'),
    ('交给李四了，他说没见到', '李四'),
    ('王小明先生您好，您的投诉已受理', '王小明'),
    ('我是买家，收件人是我爸赵刚', '赵刚'),
    ('售后何晓燕说七天内回复', '何晓燕'),
    ('被郑磊冒领了，监控都拍到了', '郑磊'),
    ('转给林志强处理，结果没人管', '林志强'),
    ('我老婆刘丽在家等了一天', '刘丽'),
    ('快递员杨帆又把件退回了', '杨帆'),
    ('给罗娟发了三次消息都不回', '罗娟'),
    ('客服主管宋佳答应今天给结果', '宋佳'),
    ('外卖员朱文说超时不是他的错', '朱文'),
    ('我儿子胡浩然的快递一直没到', '胡浩然'),
    ('快递员叫蒋磊，工号也给了', '蒋磊'),
    ('店长是谢婷婷，她态度还行', '谢婷婷'),
    ('邓超签收的，但我不认识他', '邓超'),
    ('韩梅梅女士的包裹破了', '韩梅梅'),
    ('快递员：冯建华，一直不接电话', '冯建华'),
    ('派送员许志强把东西放在楼下', '许志强'),
    ('我同事曾小贤帮我拿的', '曾小贤'),
    ('客服说让我找骑手彭宇', '彭宇'),
    ('老板龚磊说不给退', '龚磊'),
    ('我爸爸沈国强打了好几次电话', '沈国强'),
    ('寄给上官婉儿的礼物丢了', '上官婉儿'),
    ('快递员卢伟说明天再送', '卢伟'),
]


@pytest.mark.parametrize(("text", "name"), NAMES_WITHOUT_CUE_WORDS)
def test_names_by_role_relation_greeting_or_signature_are_masked(text, name):
    masked = mask_pii(text)
    assert name not in masked
    surname = name[:2] if name[:2] in COMPOUND_SURNAMES else name[0]
    assert surname + "*" in masked       # the surname is kept, as after cue words
    assert mask_pii(masked) == masked     # idempotent


# The same words before ordinary words, a surname alone, greetings without a name: kept.
# (Also checked on 30,000 simulator texts without personal data: no name found.)
ROLE_WORDS_WITHOUT_NAMES = [
    "寄给郑州的客户了", "转给桂林的网点处理", "交给安能物流了", "寄给黄山的朋友",
    '快递员态度很差，直接把包裹扔在门口', '快递员张口就骂人', '客服高速回复了一堆模板话', '快递员和客服互相推卸责任', '快递员连个电话都不打就说派送失败',
    '客服全程敷衍，问什么都不知道', '快递员常常不送上门', '我妈和我爸都不在家，快递员就放门口了', '麻烦你好好查一下物流', '快递小哥你好，麻烦放驿站',
    '师傅你好，东西送到哪了', '商家你好，什么时候发货', '王先生说已经签收了', '快递员说明天再送', '客服说让我再等等', '我老公说没收到', '我朋友帮我签收的',
    '交给门卫了，但是门卫说没有', '寄给商家的退货显示已签收', '没有授权任何人代收', '已经签收了但是东西不对', '明天签收可以吗', '家人签收的时候发现破损',
    '骑手高高兴兴地说马上到', '司机师傅人很好', '老板娘说不给退', '店主说是快递的问题', '我给商家打电话没人接', '给客服打了十几个电话', '给快递员发了消息不回',
    '派件员说放在丰巢柜了', '配送员马上就到了，结果等了两个小时', '客服安慰了我几句就没下文了', '快递员曾经送错过一次', '快递员宁愿退回也不送上门',
    '经理说会尽快处理', '负责人一直联系不上', '小哥送货很快，就是包装破了', '售后说要寄回检测', '快递员于是就走了', '骑手时间估计不准', '快递员万一弄丢了谁负责',
    '我姐姐帮我查了物流', '客服小姐姐很耐心', '快递员居然私自签收', '我先生出差了，家里没人签收', '外卖员骑车撞了人', '网点负责人态度恶劣', '你好，我的快递丢了',
    '您好，请问退款什么时候到', '同学们都收到了就我没收到', '快递员毕竟也不容易', '司机向我要了加急费', '客服明明答应了今天退款', '老板包括客服都不理人',
    '给钱了还不发货', '快递员安排好了明天送', '客服高级专员说会回电', '转给售后处理了', '交给物业签收', '寄给顾客的货发错了', '我妈妈说快递员很凶',
    '快递员把包裹交给邻居了', '客服一直说在处理', '店家你好，发票开一下', '快递员一直打不通电话', '老板跑路了吧', '我先生说东西坏了', '师傅说今天送不了',
]


@pytest.mark.parametrize("text", ROLE_WORDS_WITHOUT_NAMES)
def test_role_and_relation_words_before_ordinary_words_are_kept(text):
    assert find_pii(text) == []


def test_simulator_complaints_without_personal_data_have_no_names():
    import random

    from riskwatch.simulator.texts import TextComposer
    from streams.text.intent import INTENTS
    composer, rng = TextComposer(random.Random(7), 0.0), random.Random(1)
    found = []
    for _ in range(3000):
        text, kinds = composer.compose(rng.choice(INTENTS), category="数码", region="广东",
                                       carrier=rng.choice(("中通", "顺丰", None)), amount=199.0)
        assert not kinds
        found += [text for s in find_pii(text) if s.kind == "name"]
    assert found == []


# Forms found by an adversarial audit (2026-11-25) that went through unmasked: numbers
# with other separators or in mixed numerals, landlines in brackets or without a dash, a
# resident ID in 3-digit groups, obfuscated emails, road names that hold a stop word
# (解放路), the building and room after a house number, names after more cues. Each pair:
# the text and the pieces that must not survive masking.
AUDIT_LEAKS = [
    ("破损了要退款，电话138~1234~5678", ["1234"]),
    ("退款没到账，电话138、1234、5678，微信同号", ["1234"]),
    ("快递员态度差，我电话138·1234·5678", ["1234"]),
    ("送错地址了，电话138   1234   5678", ["1234"]),
    ("电话138\u00a01234\u00a05678", ["1234"]),
    ("物流不更新，电话138\u20101234\u20105678", ["1234"]),
    ("电话156\t1111\t2222", ["1111"]),
    ("快递三天没动，电话一三八，一二三四，五六七八，尽快回电", ["一二三四"]),
    ("包裹丢了，回电138一二三四5678谢谢", ["一二三四"]),
    ("微信wxid13912345678加一下", ["91234"]),
    ("座机(0755)12345678", ["1234"]),
    ("座机（021）61234567白天打", ["6123"]),
    ("家里电话075587654321", ["8765"]),
    ("打+86-755-12345678", ["1234"]),
    ("座机0755.1234.5678，白天打", ["1234"]),              # dotted landlines
    ("电话010.8765.4321", ["8765"]),
    ("座机021.6123.4567白天打", ["6123"]),
    ("座机0755.12345678", ["1234"]),
    ("座机0755 . 876 . 5432", ["876"]),
    ("座机0755/1234/5678", ["1234"]),
    ("座机(0755).12345678", ["1234"]),
    ("座机（0755）1234.5678", ["1234"]),
    # ... after the country code, whose area code has no 0 (on-call audit, 2026-11-25)
    ("座机+86.755.1234.5678白天打", ["1234"]),
    ("座机0086.755.1234.5678", ["1234"]),
    ("电话+86.10.8765.4321", ["8765"]),
    ("座机86.755.1234.5678", ["1234"]),
    ("座机+86 . 755 . 12345678", ["1234"]),
    ("座机+86/755/1234/5678", ["1234"]),
    ("手机+86.138.1234.5678", ["1234"]),
    ("卡号6222.0212.3456.7890.128", ["0212", "3456", "7890"]),
    ("身份证440 305 199 001 011 23X", ["1011 23X", "001 011"]),
    ("身份证四四零三零五一九九零零一零一一二三X", ["一九九零零一零一"]),
    ("邮箱zhangsan at qq dot com", ["zhangsan"]),
    ("邮箱LiNa2026 @ 163 . com", ["LiNa2026"]),
    ("邮箱zhangsan#qq.com", ["zhangsan"]),
    ("邮箱zhangsan@qq。com", ["zhangsan"]),
    ("地址：湖北省武汉市江汉区解放大道690号", ["解放大道690号", "690"]),
    ("送到解放路12号，谢谢", ["解放路12号", "12号"]),
    ("住在向阳路8号院", ["8号院"]),
    ("南京市鼓楼区中山北路100号圣爱大厦1905", ["1905", "圣爱大厦"]),
    ("深圳市南山区科技南路88号华星科技大厦12楼", ["华星科技大厦12楼"]),
    ("上海市静安区南京西路100号 阳光小区 B座 1203", ["1203"]),
    ("北京市朝阳区三里屯SOHO 5号楼1803", ["1803"]),
    ("北京市朝阳区望京西园三区312楼1门1201", ["1201", "312楼1门"]),
    ("杭州市西湖区文三路创意产业园10-201", ["10-201"]),
    ("快递员名叫王建军，态度很差", ["建军"]),
    ("代收人刘晓燕说没收到", ["晓燕"]),
    ("我姓赵，叫赵丽颖，快递三天没到", ["丽颖"]),
    ("麻烦转告陈思远，包裹到了", ["思远"]),
    ("收件人是李娜和王秀兰", ["李娜", "秀兰"]),
    ("快递员（孙海涛）一直不接电话", ["海涛"]),
    ("快递员“王小明”把包裹扔了", ["小明"]),
    ("请联系黄志明处理退款", ["志明"]),
    ("我叫Zhang Wei，快递没到", ["Zhang Wei"]),
    ("收件人:张 伟", ["张 伟"]),
    ("本人张伟，投诉快递员", ["张伟"]),
    ("找一下王芳，她知道订单", ["王芳"]),
    ("买家张伟说没收到货", ["张伟"]),
    ("送货的王小明态度很差", ["小明"]),
]


@pytest.mark.parametrize(("text", "pieces"), AUDIT_LEAKS)
def test_forms_found_by_the_audit_are_masked(text, pieces):
    masked = mask_pii(text)
    for piece in pieces:
        assert piece not in masked, masked
    assert mask_pii(masked) == masked


# ... and what the audit found masked that is not personal data: a role word before an
# ordinary word that starts with a surname character, a surname with a job title.
AUDIT_FALSE_NAMES = [
    "客服陈述不清，说了半天也不明白",
    "骑手车速太快，汤洒了",
    "快递员黄牛一样倒卖",
    "客服李经理说今天处理",
    "店长石头一样不回消息",
    "客服王主管答应退款",
    "快递员张师傅人不错",
    "告诉商家了，没人管",
    "请联系相关部门处理",
    "麻烦转告快递员，放驿站",
    "叫车来拉货太贵了",
    "买家申请退款被拒", "本人于今天签收", "告诉商家尽快发货", "请联系平台客服", "送货的时候摔坏了",
]


@pytest.mark.parametrize("text", AUDIT_FALSE_NAMES)
def test_ordinary_words_and_titles_found_by_the_audit_are_kept(text):
    assert find_pii(text) == [], mask_pii(text)
