"""Dead letters keep no personal data and no complaint text, whatever shape the bad input
has: masked ``event_type``/``detail``/``event_id``, and no complaint text in the excerpt
of a CSV line, a ``text`` array or object, an escaped ``text`` key or text under another
key. Run through the pipeline, as in production."""

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
    (letter,) = letters(orjson.dumps({"type": "heartbeat", "event_id": "x1", "ts": TS}))
    assert letter["event_type"] == "heartbeat"


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
