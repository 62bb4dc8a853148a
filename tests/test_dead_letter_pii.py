"""Dead letters keep no personal data and no complaint text, whatever shape the bad input
has: masked ``event_type``/``detail``/``event_id``, and no complaint text in the excerpt
of a CSV line, a ``text`` array or object, an escaped ``text`` key or text under another
key, also in a line that does not parse; JSON escapes decoded before masking; no short
CJK run but the contract's words (names in short fields). The audited leaks D1-D15 are
replayed as they arrived. Run through the pipeline, as in production."""

from __future__ import annotations

import json
import random
import re

import orjson
import pytest

from riskwatch.simulator.badinput import malformed_line
from streams.pipeline import Outputs, Pipeline
from streams.text import contains_unmasked_pii

MOBILE, ID = "13912345678", "110105194912310021"
TS = "2026-11-02T10:00:00+08:00"
TEXT = "我是田伟，收到的外套和图片严重不符，做工粗糙，送到阳光花园那边的驿站了，要求退款"
COMPLAINT = {"type": "complaint", "event_id": "e1", "ts": TS, "complaint_id": "c1",
             "order_id": "o1", "merchant_id": "m1", "region": "广东", "carrier": "京东物流",
             "channel": "app", "text": TEXT}
ORDER = {"type": "order", "event_id": "o1", "ts": TS, "order_id": "o1", "merchant_id": "m1",
         "region": "广东", "carrier": "中通", "category": "服饰", "amount": 99.0}


def letters(raw: bytes) -> list[dict]:
    p = Pipeline()
    p.process(raw, source="file", partition=None, offset=1)
    p.flush()
    out = Outputs()
    for kind, records in p.drain().items():
        getattr(out, kind).extend(records)
    assert out.dead_letters, raw
    return out.dead_letters


def fragments(text: str, n: int = 5) -> set[str]:
    """Every n-character piece of the CJK runs of ``text``."""
    runs = re.findall(r"[\u4e00-\u9fff]+", text)
    return {r[i:i + n] for r in runs for i in range(len(r) - n + 1)}


def assert_no_text(letter: dict, text: str = TEXT) -> None:
    dump = json.dumps(letter, ensure_ascii=False)
    leaked = [f for f in fragments(text) if f in dump]
    assert not leaked, (leaked, dump)


@pytest.mark.parametrize("value", ["手机" + MOBILE, MOBILE, ID, "身份证" + ID])
def test_dead_letter_event_type_is_masked(value):
    (letter,) = letters(orjson.dumps({"type": value, "event_id": "x1", "ts": TS}))
    assert letter["reason"] == "unknown event type"
    assert not contains_unmasked_pii(json.dumps(letter, ensure_ascii=False)), letter
    assert not contains_unmasked_pii(json.dumps(letter)), letter
    assert MOBILE not in letter["event_type"] and ID not in letter["event_type"]


def test_a_known_event_type_is_kept():
    (letter,) = letters(orjson.dumps({"type": "order", "event_id": "x1", "ts": TS}))
    assert (letter["event_type"], letter["event_id"]) == ("order", "x1")
    for known in ("Order", "complaint-update", "order_v2", "ORDER_STATUS"):   # producers' typos
        (letter,) = letters(orjson.dumps({"type": known, "event_id": "x1", "ts": TS}))
        assert letter["event_type"] == known, letter
    # a word outside the contract may be a name: blanked like one (the reason says enough)
    (letter,) = letters(orjson.dumps({"type": "heartbeat", "event_id": "x1", "ts": TS}))
    assert letter["event_type"] == "<text 9 chars>", letter


@pytest.mark.parametrize(("field", "value"), [
    ("type", "我是田伟，收到的外套和图片严重不符"),         # unknown type holding text
    ("ts", "电话" + MOBILE),                              # a bad timestamp
    ("ts", "2026-11-02 " + MOBILE),
    ("amount", "手机" + MOBILE),                          # a wrong type
    ("region", ["手机" + MOBILE]),
    ("event_id", "手机" + MOBILE),                        # ... with a bad ts below
])
def test_every_dead_letter_field_is_masked(field, value):
    obj = dict(ORDER, **{field: value})
    if field == "event_id":
        obj["ts"] = "yesterday"
    for letter in letters(orjson.dumps(obj)):
        dump = json.dumps(letter, ensure_ascii=False)
        assert not contains_unmasked_pii(dump) and "田伟" not in dump, dump
        assert "收到的外套" not in dump, dump


def test_an_invalid_enum_value_is_masked_in_detail():
    status = {"type": "order_status", "event_id": "s1", "ts": TS, "order_id": "o1",
              "status": "手机" + MOBILE}
    (letter,) = letters(orjson.dumps(status))
    assert "status" in letter["detail"] and MOBILE not in json.dumps(letter), letter
    (letter,) = letters(orjson.dumps(dict(status, status=TEXT)))
    assert_no_text(letter)


def test_a_csv_line_dead_letter_carries_no_complaint_text():
    # the simulator's own malformed kind: a complaint as a CSV line, text and all
    raw = malformed_line(random.Random(1), orjson.dumps(COMPLAINT), 1, kind="csv_line")
    assert TEXT.encode() in raw
    (letter,) = letters(raw)
    assert_no_text(letter)
    excerpt = letter["payload_excerpt"]
    # still debuggable: ids, timestamp and the short dimension values are kept
    assert excerpt.startswith("complaint,e1,2026-11-02T10:00:00+08:00,c1,o1,m1,广东,京东物流,app,")
    assert "<text " in excerpt


@pytest.mark.parametrize("text", [[TEXT], [TEXT, "第二句话也很长很长"], {"body": TEXT},
                                  {"zh": TEXT, "n": 1}])
def test_a_text_array_or_object_is_dropped(text):
    obj = dict(COMPLAINT, text=text, channel=5)   # a wrong channel type: a dead letter
    (letter,) = letters(orjson.dumps(obj))
    assert_no_text(letter)
    assert '"text":"<complaint text omitted>"' in letter["payload_excerpt"]
    assert '"event_id":"e1"' in letter["payload_excerpt"]


def test_an_escaped_text_key_is_dropped():
    body = orjson.dumps(dict(COMPLAINT, channel=5)).replace(b'"text"', b'"te\\u0078t"')
    (letter,) = letters(body)
    assert_no_text(letter)
    # ... and a line that does not parse, with the text escaped too
    escaped = json.dumps(dict(COMPLAINT), ensure_ascii=True).replace('"text"', '"te\\u0078t"')
    (letter,) = letters(escaped[:-3].encode())
    assert_no_text(letter)
    assert "\\u" not in letter["payload_excerpt"] or "<text " in letter["payload_excerpt"]


@pytest.mark.parametrize("key", ["body", "comment", "content", "备注"])
def test_text_under_another_key_is_blanked(key):
    obj = {k: v for k, v in COMPLAINT.items() if k != "text"} | {key: TEXT}
    (letter,) = letters(orjson.dumps(obj))          # missing text: a dead letter
    assert_no_text(letter)
    assert "广东" in letter["payload_excerpt"] and "京东物流" in letter["payload_excerpt"]
    (letter,) = letters(orjson.dumps(obj)[:-5])     # and truncated
    assert_no_text(letter)


def test_a_long_line_is_cut_without_half_a_placeholder():
    obj = dict(COMPLAINT, channel=5, note="x" * 250 + TEXT * 3)
    (letter,) = letters(orjson.dumps(obj))
    excerpt = letter["payload_excerpt"]
    assert excerpt.endswith("…") and len(excerpt.encode()) <= 304, excerpt
    assert_no_text(letter)
    assert re.search(r"<text(?! \d+ chars>)", excerpt) is None, excerpt


# --- The PII audit of the dead-letter topic (cases D1-D15) ----------------------------------
# Each audited line as it arrived (JSON escapes are the line's own: r-strings), what the
# pipeline must still say about it, and what must not come out. Found in dead letters:
# escaped full-width digits decoded only after masking (D1), a "text" key spelt with an
# escape (D2) or holding an array (D14) in a line that does not parse, and names kept as
# short CJK runs (D7, D12, D15). Keys outside the contract (note, remark, customer_name)
# show as <text N chars> since romanised names are blanked too (a key may be a name).
AUDIT = {
    # case: (line, reason, event type, what the excerpt keeps)
    "D1": (r'{"type":"complaint","event_id":"ev-audit-D1","ts":"2026-11-03T14:50:00+08:00",'
           r'"complaint_id":"c-audit-D1","merchant_id":"m0008","region":"广东","channel":"app",'
           r'"note":"\uff11\uff15\uff18\uff15\uff15\uff16\uff16\uff17\uff17\uff18\uff18","text":"收件',
           "malformed json", None, ['"event_id":"ev-audit-D1"', '"region":"广东"',
                                    '"<text 4 chars>":"158****7788"', '"text":"<complaint text omitted>']),
    "D2": (r'{"type":"complaint","event_id":"ev-audit-D2","ts":"2026-11-03T14:50:01+08:00",'
           r'"complaint_id":"c-audit-D2","merchant_id":"m0008","region":"广东","channel":"app",'
           r'"tex\u0074":"我是林黛玉，电话158~6666~7777 收件人林黛玉","x":',
           "malformed json", None, ['"event_id":"ev-audit-D2"', '"region":"广东"',
                                    '"text":"<complaint text omitted>","x":']),
    "D3": (r'{"type":"complaint","event_id":"ev-audit-D3","ts":"2026-11-03T14:50:02+08:00",'
           r'"complaint_id":"c-audit-D3","merchant_id":"m0008","region":"广东","channel":"app",'
           r'"remark":"回电159~4444~5555 座机(0755)12340000","text":5}',
           "invalid field", "complaint", ['"event_id":"ev-audit-D3"', '"region":"广东"', '"<text 6 chars>":"']),
    "D4": (r'{"type":"order_status","event_id":"ev-audit-D4","ts":"2026-11-03T14:50:03+08:00",'
           r'"order_id":"o-1","status":"联系(020)87654321"}',
           "invalid field", "order_status", ['"event_id":"ev-audit-D4"', '"status":"']),
    "D5": (r'complaint,ev-audit-D5,2026-11-03T14:50:04+08:00,c-audit-D5,o-1,m0008,广东,中通,app,'
           r'电话157 3333 4444 座机(010)66667777,normal',
           "malformed json", None, ["complaint,ev-audit-D5,2026-11-03T14:50:04+08:00,c-audit-D5,"
                                    "o-1,m0008,广东,中通,app,", ",normal"]),
    "D6": (r'{"type":"complaint","event_id":"ev-audit-D6","ts":"2026-11-03T14:50:05+08:00",'
           r'"complaint_id":"c-audit-D6","merchant_id":"m0008","region":"广东","channel":"app",'
           r'"comment":"电话156\t1111\t2222","text":"x"}x',
           "missing field", None, ['"event_id":"ev-audit-D6"', '"region":"广东"',
                                   '"text":"<complaint text omitted>"}x']),
    "D7": (r'{"type":"complaint_update","event_id":"ev-audit-D7","ts":"2026-11-03T14:50:06+08:00",'
           r'"complaint_id":"c-1","intent":"refund","status":"回电155~2222~1111","csat":"黄蓉"}',
           "invalid field", "complaint_update", ['"event_id":"ev-audit-D7"', '"intent":"refund"',
                                                 '"csat":"<text 2 chars>"}']),
    "D11": (r'[{"type":"complaint","event_id":"ev-audit-D10","ts":"2026-11-03T14:50:09+08:00",'
            r'"complaint_id":"c-audit-D10","merchant_id":"m0008","region":"广东","carrier":"中通",'
            r'"channel":"app","order_id":"o-1","text":"电话13566667777","csat":1},'
            r'{"type":"complaint_update","event_id":"ev-audit-D11","ts":"x","complaint_id":"c-1",'
            r'"status":"138~5555~0000"}]',
            "invalid field", "complaint_update", ['"event_id":"ev-audit-D10"', '"carrier":"中通"',
                                                  '"text":"<complaint text omitted>"']),
    "D12": (r'complaint,ev-audit-D12,2026-11-03T14:50:10+08:00,c-audit-D12,o-1,m0008,广东,中通,'
            r'app,欧阳娜娜,快递没到,normal',
            "malformed json", None, ["complaint,ev-audit-D12,2026-11-03T14:50:10+08:00,c-audit-D12,"
                                     "o-1,m0008,广东,中通,app,<text 4 chars>,<text 4 chars>,normal"]),
    "D14": (r'{"type":"complaint","event_id":"ev-audit-D14","ts":"2026-11-03T14:50:12+08:00",'
            r'"complaint_id":"c-audit-D14","merchant_id":"m0008","region":"广东","channel":"app",'
            r'"text":["关羽","地址 解放路12号"],"x":',
            None, None, ['"event_id":"ev-audit-D14"', '"region":"广东"',
                         '"text":"<complaint text omitted>","x":']),
    "D15": (r'{"type":"complaint","event_id":"ev-audit-D15","ts":"2026-11-03T14:50:13+08:00",'
            r'"complaint_id":"c-audit-D15","merchant_id":"m0008","region":"广东","channel":"app",'
            r'"customer_name":"诸葛亮","text":null}',
            "invalid field", "complaint", ['"event_id":"ev-audit-D15"', '"region":"广东"',
                                           '"<text 12 chars>":"<text 3 chars>"']),
}
AUDIT_SECRETS = [
    ("D1", "１５８５５６６７７８８"), ("D1", "15855667788"),
    ("D1", r"\uff11\uff15\uff18\uff15\uff15\uff16\uff16\uff17\uff17\uff18\uff18"),
    ("D2", "林黛玉"), ("D2", "158~6666~7777"), ("D2", "15866667777"), ("D2", "收件人"),
    ("D3", "159~4444~5555"),
    ("D3", "15944445555"),
    ("D3", "(0755)12340000"),
    ("D3", "075512340000"),
    ("D4", "(020)87654321"),
    ("D4", "02087654321"),
    ("D5", "157 3333 4444"), ("D5", "15733334444"),
    ("D5", "(010)66667777"),
    ("D5", "01066667777"),
    # as written (JSON escapes), and decoded: tab separators. The record's JSON writes a
    # tab "\t" again, so the written form would leak unless the decoded one is masked.
    ("D6", r"156\t1111\t2222"),
    ("D6", "156\t1111\t2222"),
    ("D6", "15611112222"),
    ("D7", "黄蓉"),
    ("D7", "155~2222~1111"),
    ("D7", "15522221111"),
    ("D11", "13566667777"),
    ("D11", "138~5555~0000"),
    ("D11", "13855550000"),
    ("D12", "欧阳娜娜"), ("D12", "快递没到"),
    ("D14", "关羽"), ("D14", "解放路"), ("D14", "12号"),
    ("D15", "诸葛亮"),
]


def audit_letter(case: str) -> dict:
    line, reason, event_type, _ = AUDIT[case]
    p = Pipeline()
    p.process_lines([line.encode()], source="audit")
    (letter,) = p.drain().dead_letters
    return letter


def leaks(letter: dict, secret: str) -> bool:
    """``secret`` anywhere in the record: in its strings, or in its JSON bytes."""
    strings = "\n".join(str(v) for v in letter.values())
    return secret in strings or secret.encode() in orjson.dumps(letter)


@pytest.mark.parametrize(("case", "secret"), AUDIT_SECRETS)
def test_an_audited_dead_letter_carries_no_personal_data(case, secret):
    letter = audit_letter(case)
    assert not leaks(letter, secret), (secret, letter)
    assert not contains_unmasked_pii("\n".join(str(v) for v in letter.values())), letter


@pytest.mark.parametrize("case", sorted(AUDIT))
def test_an_audited_dead_letter_is_still_debuggable(case):
    _, reason, event_type, kept = AUDIT[case]
    letter = audit_letter(case)
    assert (letter["source"], letter["line"] if "line" in letter else letter["offset"]) == ("audit", 1)
    if reason is not None:
        assert letter["reason"] == reason, letter
    assert letter["event_type"] == event_type, letter
    for piece in kept:
        assert piece in letter["payload_excerpt"], (piece, letter["payload_excerpt"])
    assert "ev-audit-" in letter["payload_excerpt"]


def test_a_named_value_in_a_short_field_is_blanked_in_detail_too():
    letter = audit_letter("D7")
    assert letter["detail"].startswith("Invalid enum value '<text 2 chars>"), letter["detail"]
    assert letter["detail"].endswith("- at `$.status`"), letter["detail"]


def line_letter(line: str) -> dict:
    (letter,) = letters(line.encode())
    return letter


HEAD = '{"type":"complaint","event_id":"e1","region":"广东","carrier":"中通",'


@pytest.mark.parametrize(("value", "after"), [
    ('"我是林黛玉，电话13912345678"', ',"x":1'),                     # a string
    ('["关羽","地址 解放路12号"]', ',"x":1'),                            # an array
    ('{"name":"关羽","addr":["解放路12号","]}"]}', ',"x":1'),            # brackets inside strings
    ('[["关羽"],{"a":"解放路12号"}]', '}'),                               # nested
    ('"关羽 解放路12号', ''),                                            # cut inside the string
    ('["关羽","解放路12号"', ''),                                         # cut inside the array
    ('{"n":"关羽","a":"解放路12号', ''),                                  # cut inside the object
    ('关羽,解放路12号', ',"x":1'),                                       # not JSON: to the end
    (' [ "关羽" , "解放路12号" ] ', ',"x":1'),                            # spaces around
])
def test_a_text_value_of_any_shape_is_omitted_from_a_line_that_does_not_parse(value, after):
    for key in ('"text"', r'"tex\u0074"', r'"\u0074\u0065\u0078\u0074"'):
        line = HEAD + key + ":" + value + after + ',"y":'       # the trailing "y": never parses
        letter = line_letter(line)
        dump = orjson.dumps(letter).decode()
        for secret in ("关羽", "解放路", "12号", "林黛玉", "13912345678"):
            assert secret not in dump, (line, letter["payload_excerpt"])
        excerpt = letter["payload_excerpt"]
        lead, trail = value[:len(value) - len(value.lstrip())], value[len(value.rstrip()):]
        assert excerpt.startswith(HEAD + '"text":' + lead + '"<complaint text omitted>'), excerpt
        if after == ',"x":1' and not value.startswith("关羽"):
            assert excerpt.endswith('"<complaint text omitted>"' + trail + ',"x":1,"y":'), excerpt


@pytest.mark.parametrize(("written", "number"), [
    (r"\u0031\u0033\u0039\u0031\u0032\u0033\u0034\u0035\u0036\u0037\u0038", MOBILE),   # ASCII digits
    (r"\uff11\uff13\uff19\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18", MOBILE),   # full-width
    (r"139\u00201234\u00205678", MOBILE),                                               # escaped spaces
    (r"\u0031\u0031\u0030\u0031\u0030\u0035\u0031\u0039\u0034\u0039\u0031\u0032\u0033\u0031"
     r"\u0030\u0030\u0032\u0031", ID),
])
def test_escaped_digits_are_decoded_before_masking(written, number):
    truncated = '{"type":"order","event_id":"e1","note":"电话' + written + '","amount":'
    wrong_type = '{"type":"order","event_id":"e1","ts":5,"note":"\\\\' + written + '"}'   # escaped twice
    for line in (truncated, wrong_type):
        letter = line_letter(line)
        values = "\n".join(str(v) for v in letter.values())
        assert number not in values and written not in values, (line, letter)
        assert "****" in letter["payload_excerpt"], letter["payload_excerpt"]
        assert '"event_id":"e1"' in letter["payload_excerpt"]


def test_escaped_text_in_event_id_and_type_is_decoded_before_masking():
    escaped = r"\uff11\uff13\uff19\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18"
    (letter,) = letters(orjson.dumps({"type": "order", "event_id": escaped, "ts": "x"}))
    assert letter["event_id"] == "139****5678", letter
    (letter,) = letters(orjson.dumps({"type": "\\u9ec4\\u84c9", "event_id": "e1", "ts": TS}))
    assert letter["event_type"] == "<text 2 chars>", letter      # 黄蓉, escaped


@pytest.mark.parametrize(("value", "shown"), [
    ("黄蓉", "<text 2 chars>"), ("诸葛亮", "<text 3 chars>"), ("欧阳娜娜", "<text 4 chars>"),
    ("林*", "<text 1 chars>*"),                              # a name the masker cut short
    ("广东", "广东"), ("广东省", "广东省"), ("深圳市", "深圳市"), ("黑龙江省", "黑龙江省"),
    ("中通", "中通"), ("京东物流", "京东物流"), ("中通快递", "中通快递"), ("邮政EMS", "邮政EMS"),
    ("服饰", "服饰"), ("已签收", "已签收"), ("满意", "满意"),
    ("广东 中通", "广东 中通"),                               # words of the contract, together
    ("广东 黄蓉", "<text 4 chars>"),                          # ... with a name: blanked whole
    ("１５８", "１５８"),                                      # no ideograph: nothing to blank
])
def test_a_short_cjk_run_is_kept_only_if_it_is_a_word_of_the_contract(value, shown):
    from streams.dead_letters import _blank_free_text
    assert _blank_free_text(f"a,{value},b") == f"a,{shown},b"


def test_every_region_carrier_and_category_of_the_simulator_stays_readable():
    from riskwatch.simulator.world import CARRIERS, CATEGORIES, PROVINCES
    from streams.dead_letters import _blank_free_text
    words = [p.name for p in PROVINCES] + [c.name for c in CARRIERS] + [c.name for c in CATEGORIES]
    line = ",".join(words)
    assert _blank_free_text(line) == line


def test_an_internal_error_letter_is_scrubbed_like_the_others():
    from streams.dead_letters import internal_error_letter
    letter = internal_error_letter(ValueError("客户黄蓉 13912345678"), source="s", partition=0,
                                   offset=1, recorded_at=TS)
    assert letter["detail"] == "ValueError: <text 4 chars> 139****5678", letter


# --- Romanised names --------------------------------------------------------------------------
# Latin-script names passed untouched: a run of Latin words is kept only if it is made of
# words of the contract (field names, enum values, menu values), like a CJK run.
ROMANISED = [
    # (line, the name, what the excerpt shows instead)
    ('{"type":"complaint","event_id":"e1","csat":"Zhang Wei","region":"广东"',
     "Zhang Wei", '"csat":"<text 8 chars>","region":"广东"'),                     # malformed
    ("c-7,广东,Zhang Wei,app", "Zhang Wei", "c-7,广东,<text 8 chars>,app"),       # a CSV line
    ('{"type":"order","event_id":"e1","name":"LI NA"}', "LI NA", '"<text 4 chars>"}'),
    ('{"type":"complaint","event_id":"e1","contact":"zhang wei"', "zhang wei",
     '"event_id":"e1","<text 7 chars>":"<text 8 chars>"'),
    ('{"x":"Wang Xiuying 13812345678"}', "Wang Xiuying", '{"x":"<text 11 chars> 138****5678"}'),
    ('{"type":"order","event_id":"e1","buyer":"ZhangWei"', "ZhangWei", '"<text 8 chars>"'),
    ('{"type":"order","event_id":"e1","buyer":"Zhang-Wei"', "Zhang-Wei", '"<text 8 chars>"'),
    ('{"type":"order","event_id":"e1","buyer":"Ou-Yang Nana"', "Ou-Yang", '"<text 10 chars>"'),
    ('{"type":"order","event_id":"e1","buyer":"Zhāng Wěi"', "Zhāng", '"<text 8 chars>"'),
    ('{"type":"order","event_id":"e1","buyer":"Lü Xiǎomíng"', "Xiǎomíng", '"<text 10 chars>"'),
    ('{"type":"order","event_id":"e1","buyer":"Ｚｈａｎｇ\u3000Ｗｅｉ"', "Ｚｈａｎｇ",
     '"<text 8 chars>"'),                                                        # full-width
    ('{"type":"order","event_id":"e1","buyer":"Zhang\\u0020Wei"', "Zhang",
     '"<text 8 chars>"'),                                                        # escaped space
    ('{"type":"order","event_id":"e1","buyer":"Sun Li·Wang"', "Sun Li",
     '"<text 9 chars>"'),                                                        # a middle dot
    ('{"type":"order","event_id":"e1","region":"广东 Zhang Hainan"', "Hainan",
     '"region":"广东 <text 11 chars>"'),                      # a contract word in a name: whole
    ('{"type":"order","event_id":"e1","carrier":"SF Zhang"', "Zhang", '"<text 7 chars>"'),
    ('{"type":"order","event_id":"e1","Zhang Wei":"13812345678"}', "Zhang Wei",
     '"<text 8 chars>":"138****5678"'),                                          # a key
]


@pytest.mark.parametrize(("line", "name", "shown"), ROMANISED)
def test_a_romanised_name_in_an_excerpt_is_blanked(line, name, shown):
    letter = line_letter(line)
    for secret in (name, *name.replace("-", " ").split()):
        assert not leaks(letter, secret), (secret, letter)
    assert shown in letter["payload_excerpt"], letter["payload_excerpt"]


# Names in other scripts: the contract has no word in them, so every run is blanked (a
# cross-border order's buyer, a Korean or Russian customer's name in a stray field).
OTHER_SCRIPTS = [
    ('{"type":"order","event_id":"e1","buyer":"김민수"', "김민수", '"<text 3 chars>"'),
    ('{"type":"order","event_id":"e1","buyer":"やまだ たろう"', "たろう", '"<text 6 chars>"'),
    ('{"type":"order","event_id":"e1","buyer":"ヤマダ・タロウ"', "タロウ", '"<text 6 chars>"'),
    ('{"type":"order","event_id":"e1","buyer":"山田たろう"', "たろう",
     '"<text 2 chars><text 3 chars>"'),                                  # kanji, then kana
    ('{"type":"order","event_id":"e1","buyer":"Иван Петров"', "Петров", '"<text 10 chars>"'),
    ('{"type":"order","event_id":"e1","buyer":"Γιώργος"', "Γιώργος", '"<text 7 chars>"'),
    ('{"x":"Ахмед 13812345678"}', "Ахмед", '{"x":"<text 5 chars> 138****5678"}'),
    ('{"type":"order","event_id":"e1","\\u0418\\u0432\\u0430\\u043d":"x"', "Иван",
     '"<text 4 chars>":"x"'),                                            # an escaped key
]


@pytest.mark.parametrize(("line", "name", "shown"), OTHER_SCRIPTS)
def test_a_name_in_another_script_is_blanked(line, name, shown):
    letter = line_letter(line)
    for secret in (name, *name.split()):
        assert not leaks(letter, secret), (secret, letter)
    assert shown in letter["payload_excerpt"], letter["payload_excerpt"]


@pytest.mark.parametrize(("line", "shown"), [
    ('{"type":"order","event_id":"e1","buyer":"ZhangWei13812345678"', "ZhangWei138****5678"),
    ('{"type":"order","event_id":"ORD13812345678","ts":1}', "ORD138****5678"),
    ("c-7,广东,abc13912345678,app", "abc139****5678"),
])
def test_a_mobile_glued_to_letters_is_masked(line, shown):
    letter = line_letter(line)
    assert not leaks(letter, shown.replace("****", "1234")[-11:]), letter
    assert shown in json.dumps(letter, ensure_ascii=False), letter


@pytest.mark.parametrize("token", ["SF1381234567890", "ev-1381234567", "o-123", "m0008"])
def test_a_longer_or_shorter_number_after_letters_stays(token):
    letter = line_letter('{"type":"order","event_id":"e1","x":"%s"' % token)
    assert token in letter["payload_excerpt"], letter


def test_another_script_in_a_message_detail_is_blanked():
    (letter,) = letters(orjson.dumps(dict(UPDATE, status="Иван")))
    assert not leaks(letter, "Иван"), letter
    assert "Invalid enum value '<text 4 chars>' - at `$.status`" in letter["detail"], letter


# A line that parses but fails validation: the name goes into detail, event_id or
# event_type as well as into the excerpt built by walking the parsed object.
UPDATE = {"type": "complaint_update", "event_id": "u-1", "ts": TS, "complaint_id": "c-1"}


@pytest.mark.parametrize(("obj", "field", "shown"), [
    (dict(UPDATE, csat="Zhang Wei"), "payload_excerpt", '"csat":"<text 8 chars>"'),
    (dict(UPDATE, status="Zhang Wei"), "detail",
     "Invalid enum value '<text 8 chars>' - at `$.status`"),
    (dict(UPDATE, status="O'Brien Zhang"), "detail",                 # quoted "…" by msgspec
     "Invalid enum value \"O'<text 10 chars>\" - at `$.status`"),
    (dict(UPDATE, type="Zhang Wei"), "detail", "Invalid value '<text 8 chars>' - at `$.type`"),
    (dict(UPDATE, type="Zhang 'Wei"), "detail",                      # quoted raw by msgspec
     "Invalid value '<text 5 chars> '<text 3 chars>' - at `$.type`"),
    (dict(UPDATE, type="Zhang Wei"), "event_type", "<text 8 chars>"),
    (dict(UPDATE, event_id="Zhang Wei", ts="x"), "event_id", "<text 8 chars>"),
    (dict(UPDATE, ts="Zhang Wei"), "detail", "timestamp '<text 8 chars>' is not RFC 3339 ("),
    (dict(UPDATE, ts="2026-11-02 Zhang Wei"), "detail", "timestamp '2026-11-02 <text 8 chars>'"),
    (dict(UPDATE, ts="2026-11-02T10:00:00 Zhang"), "detail", "'2026-11-02T10:00:00 <text 5 chars>'"),
])
def test_a_romanised_name_in_a_valid_json_line_is_blanked_everywhere(obj, field, shown):
    (letter,) = letters(orjson.dumps(obj))
    for secret in ("Zhang", "Wei", "Brien"):
        assert not leaks(letter, secret), (secret, letter)
    assert shown in letter[field], (field, letter)
    assert '"complaint_id":"c-1"' in letter["payload_excerpt"], letter


def test_a_romanised_name_in_an_internal_error_is_blanked():
    from streams.dead_letters import internal_error_letter
    letter = internal_error_letter(KeyError("Zhang Wei"), source="s", partition=0, offset=1,
                                   recorded_at=TS)
    assert letter["detail"] == "KeyError: '<text 8 chars>'", letter
    letter = internal_error_letter(ValueError("customer Li Na 13912345678"), source="s",
                                   partition=0, offset=1, recorded_at=TS)
    assert letter["detail"] == "ValueError: <text 12 chars> 139****5678", letter


@pytest.mark.parametrize(("value", "shown"), [
    ("Zhang Wei", "<text 8 chars>"), ("LI NA", "<text 4 chars>"), ("zhang wei", "<text 8 chars>"),
    ("ZhangWei", "<text 8 chars>"), ("Zhang-Wei", "<text 8 chars>"), ("Ou-Yang", "<text 6 chars>"),
    ("Xi'an Li", "<text 2 chars>'<text 4 chars>"),      # an apostrophe ends a run: each blanked
    ("J. Smith", "J. <text 5 chars>"),                   # an initial alone names nobody
    ("Wang X", "<text 5 chars>"), ("order Zhang", "<text 10 chars>"),
    ("Wang Xiuying 138****5678", "<text 11 chars> 138****5678"),
    ("Zhang 3 Wei", "<text 5 chars> 3 <text 3 chars>"),
    ("邮政Zhang", "邮政<text 5 chars>"), ("Zhang黄蓉", "<text 5 chars><text 2 chars>"),
    ("heartbeat", "<text 9 chars>"), ("yesterday", "<text 9 chars>"),
])
def test_a_latin_run_outside_the_contract_is_blanked(value, shown):
    from streams.dead_letters import _blank_free_text
    assert _blank_free_text(f"a,{value},b") == f"a,{shown},b"


@pytest.mark.parametrize("value", [
    "order", "order_status", "complaint_update", "out_for_delivery", "delivery_delay",
    "SHIPPED", "Order", "OrderStatus", "eventId", "complaint-update", "in transit",
    "app", "hotline", "wechat", "normal", "vip", "svip", "key_account", "SF", "EMS", "JD",
    "邮政EMS", "邮政ＥＭＳ", "digital", "true", "false", "null", "x", "T",
    "o-123", "m01313", "ev-o-0", "c-audit-D5", "bad-12", "order_v2", "88vip", TS,
    "2026-11-02T02:26:21Z", "99.5", "-1.5e3", "6b9f0d2c-8a4e-4f1b-9c3d-2e7a5b1c0f93",
    "<text 5 chars>", "<complaint text omitted>", "138****5678", "z***@<text 2 chars>",
])
def test_a_latin_run_of_the_contract_and_a_token_with_digits_are_kept(value):
    from streams.dead_letters import _blank_free_text
    assert _blank_free_text(f"a,{value},b") == f"a,{value},b"


def test_every_field_name_and_enum_value_of_the_contract_stays_readable():
    import msgspec.inspect

    from riskwatch.events import INTENTS, ORDER_STATUSES, Event
    from streams.dead_letters import _blank_free_text
    from streams.text import HIGH_TIERS
    words = set(INTENTS) | set(ORDER_STATUSES) | set(HIGH_TIERS) | {"resolved", "escalated",
                                                                       "reopened"}
    for struct in msgspec.inspect.type_info(Event).types:
        words |= {struct.tag_field, struct.tag} | {f.name for f in struct.fields}
    # the simulator's channels and tiers
    words |= {"app", "hotline", "wechat", "web", "12315", "normal", "vip", "svip"}
    line = ",".join(sorted(words))
    assert _blank_free_text(line) == line


def test_no_common_surname_is_a_word_of_the_contract():
    # the vocabulary keeps words that cannot be names; a pinyin surname (Li, He, Nan) can
    from streams.dead_letters import _CONTRACT_LATIN, _MESSAGE_LATIN
    surnames = set("""wang li zhang liu chen yang huang zhao wu zhou xu sun ma zhu hu guo he lin
        gao luo zheng liang xie song tang han feng deng cao peng zeng xiao tian dong pan yuan cai
        jiang yu du ye cheng wei su lu ding ren shen yao cui zhong tan fan jin shi liao jia xia
        fu fang zou xiong bai meng qin qiu hou yin xue yan duan lei long tao gu mao hao gong shao
        wan qian dai kong ji an ou ouyang zhuge situ nan bao lan mo ning qi rao shan""".split())
    assert not surnames & _CONTRACT_LATIN
    assert not surnames & _MESSAGE_LATIN


READABLE_ORDER = {"type": "order", "event_id": "ev-o-17", "ts": TS, "order_id": "o-123",
                  "merchant_id": "m01313", "region": "广东", "carrier": "SF",
                  "category": "digital", "amount": -99.5}


@pytest.mark.parametrize("obj", [
    READABLE_ORDER,                                                   # amount below 0
    dict(READABLE_ORDER, amount="99.5"),                              # a string
    {k: v for k, v in READABLE_ORDER.items() if k != "carrier"},     # missing field
    dict(READABLE_ORDER, ts="2026-11-02T10:00:00"),                   # no offset
    dict(READABLE_ORDER, ts="2026-11-02T10:00+08:00"),                # not RFC 3339
    dict(READABLE_ORDER, ts="2026-02-30T10:00:00+08:00"),             # no such date
    dict(READABLE_ORDER, ts="2026-11-02T25:00:00+08:00"),             # time out of range
    dict(READABLE_ORDER, type="Order"),                               # unknown type
    dict(READABLE_ORDER, region="x" * 300),                           # too long
    {"type": "order_status", "event_id": "ev-s-1", "ts": TS, "order_id": "o-1",
     "status": "SHIPPED"},                                            # enum, wrong case
    dict(UPDATE, csat=7, intent="damaged", status="resolved"),        # out of range
    dict(UPDATE, csat="5", intent="lost_parcel"),
])
def test_a_malformed_line_stays_readable(obj):
    # field names, enum values, ids, timestamps, numbers and the whole error message
    from riskwatch.events import decode_events
    raw = orjson.dumps(obj)
    (letter,) = letters(raw)
    (bad,) = decode_events(raw)[1] or [None]
    if bad is not None:
        assert letter["detail"] == bad.detail, letter
    else:   # a timestamp the pipeline checks itself
        assert letter["detail"].startswith("timestamp '") and "<text" not in letter["detail"]
    assert letter["event_id"] == obj["event_id"] and letter["event_type"] == obj["type"]
    if obj.get("region") != "x" * 300:
        assert letter["payload_excerpt"] == raw.decode(), letter


@pytest.mark.parametrize("raw", [
    b'{"type":"order","event_id":"ev-o-1","ts":"' + TS.encode() + b'","amount":',   # truncated
    b'{"type":"order","event_id":"ev-o-1",,}',          # invalid character
    b'{"type":"order","event_id":"ev-o-1"}x',           # trailing characters
    b'{"type":"order","event_id" "ev-o-1"}',            # expected ':'
    b'{"type":"order","event_id":"ev-o-1",}',           # trailing comma
    b'{"type":"order","event_id":"ev-o-1\\q"}',          # invalid escaped character
    b'[1]', b'"order"', b'{}', b'{"type":"order","event_id":"\xff"}',
])
def test_a_json_error_message_stays_readable(raw):
    from riskwatch.events import decode_events
    (letter,) = letters(raw)
    (bad,) = decode_events(raw)[1]
    assert letter["detail"] == bad.detail, letter
    assert "<text" not in letter["payload_excerpt"] or raw == b'{"type":"order","event_id":"\xff"}'
