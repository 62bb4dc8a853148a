"""Backtest scoring: alerts from a replay against a simulator's ground-truth manifest.

An *episode* is one ``alert_id`` (fire ... resolve). An episode matches an incident when

- it started (first ``firing`` record's ``ts``) between the incident's start and
  ``grace_minutes`` after its end,
- none of its dimensions contradicts the incident (``intent`` compared with the
  incident's intent), and
- it shares at least one dimension with the incident: a global alert or one on an
  unrelated merchant is a false episode even if it happens during an incident, and
- its ``metric`` (``complaint_rate`` when absent) is one of the incident's ``metrics``
  (the metric families that should see it: an order surge is not a complaint-rate
  incident; a hub jam shows in the complaint rate and in overdue deliveries). An
  incident without ``metrics`` (older manifests) accepts any metric.

An incident may also list ``tolerated_metrics``: alert families that truly see its side
effects at another scope (a category's complaints turning to delivery_delay raise every
carrier's delivery_delay rate a little). An episode of such a metric that matches the
incident otherwise is not a false episode, and not a detection either.

Recall = incidents with a matching episode / incidents; precision = episodes matching an
incident / episodes; delay = first matching episode start - incident start. ``by_metric``
gives, per alert metric, its episodes and precision, and the incidents of its family
it detected.

>>> truth = {"incidents": [{"id": "i1", "kind": "k", "dimensions": {"region": "广东"},
...          "intent": "lost_parcel", "start": "2026-11-03T10:00:00+08:00",
...          "end": "2026-11-03T12:00:00+08:00"}], "promotions": []}
>>> alerts = [{"alert_id": "a", "status": "firing", "dimensions": {"region": "广东"},
...            "ts": "2026-11-03T10:10:00+08:00"},
...           {"alert_id": "b", "status": "firing", "dimensions": {"region": "浙江"},
...            "ts": "2026-11-03T10:10:00+08:00"}]
>>> r = evaluate(truth, alerts)
>>> r["recall"], r["precision"], r["median_delay_minutes"]
(1.0, 0.5, 10.0)
"""

from __future__ import annotations

import datetime as dt
import statistics
from pathlib import Path

import orjson

from riskwatch.errors import InputError

__all__ = ["evaluate", "format_report", "load_alerts", "load_manifest"]


def _epoch(ts: str) -> float:
    return dt.datetime.fromisoformat(ts).timestamp()


def load_manifest(path: str | Path) -> dict:
    try:
        data = orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise InputError(f"cannot read manifest {path}: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise InputError(f"manifest {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("incidents"), list):
        raise InputError(f"manifest {path} has no 'incidents' list (is it a simulator manifest?)")
    return data


# What a record that is not an alert probably is: riskwatch's other outputs and inputs,
# told apart by a field only they have (checked in this order).
_LOOKS_LIKE = (
    ("type", "an input event (riskwatch replay reads these)"),
    ("dead_letter_id", "a dead letter (replay --dead-letters-out)"),
    ("complaint_id", "an enriched complaint (replay --complaints-out)"),
    ("slice", "a slice aggregate (replay --aggregates-out)"),
    ("tier", "a merchant score (replay --scores-out)"),
)


def _alert_problem(record: object) -> str | None:
    """Why ``record`` is not an alert record evaluate can use (``None``: it is one)."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an alert record"
    if "alert_id" not in record:
        for field, what in _LOOKS_LIKE:
            if field in record:
                return f"not an alert record: it looks like {what}"
    for field in ("alert_id", "status", "ts"):
        if not isinstance(record.get(field), str) or not record[field]:
            return f"not an alert record: no {field!r}"
    try:
        when = dt.datetime.fromisoformat(record["ts"])
    except ValueError:
        return f"'ts' is not an RFC 3339 time: {record['ts']!r}"
    if when.tzinfo is None:
        return f"'ts' has no UTC offset: {record['ts']!r}"
    if not isinstance(record.get("dimensions", {}), dict):
        return "'dimensions' is not an object"
    return None


def load_alerts(path: str | Path) -> list[dict]:
    """The alert records of a JSONL file (``riskwatch replay --alerts-out``).

    Raises :class:`InputError` naming the file and line of the first line that is not
    an alert record: another riskwatch file passed by mistake would otherwise crash
    the scoring (``KeyError``) or, for events, be scored as if it held no alerts.
    """
    alerts = []
    try:
        with Path(path).open("rb") as handle:
            for n, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    raise InputError(f"--alerts {path}, line {n}: not a JSON alert line") from None
                problem = _alert_problem(record)
                if problem:
                    raise InputError(f"--alerts {path}, line {n}: {problem}; give the alerts "
                                     "file of `riskwatch replay --alerts-out`")
                alerts.append(record)
    except OSError as exc:
        raise InputError(f"cannot read alerts {path}: {exc.strerror}") from None
    return alerts


def _episodes(alerts: list[dict]) -> list[dict]:
    episodes: dict[str, dict] = {}
    for a in alerts:
        ep = episodes.get(a["alert_id"])
        if ep is None:
            if a.get("status") != "firing":
                continue
            ep = episodes[a["alert_id"]] = {"alert_id": a["alert_id"], "dimensions": a.get("dimensions", {}),
                                             "metric": a.get("metric") or "complaint_rate",
                                             "start": _epoch(a["ts"]), "end": None,
                                             "severity": a.get("severity")}
        if a.get("status") == "resolved":
            ep["end"] = _epoch(a["ts"])
        else:
            ep["severity"] = a.get("severity")
    return sorted(episodes.values(), key=lambda e: (e["start"], e["alert_id"]))


def _matches(ep: dict, inc: dict, grace: float, *, tolerated: bool = False) -> bool:
    start, end = _epoch(inc["start"]), _epoch(inc["end"])
    # Some metrics see an incident longer than its window (parcels a jam delayed stay
    # overdue for hours after it clears): the manifest says until when, per metric.
    end = _epoch(inc.get("effect_end", {}).get(ep.get("metric", "complaint_rate"), inc["end"]))
    if not start <= ep["start"] <= end + grace:
        return False
    metrics = inc.get("tolerated_metrics", ()) if tolerated else inc.get("metrics")
    if (metrics or tolerated) and ep.get("metric", "complaint_rate") not in metrics:
        return False
    want = dict(inc.get("dimensions", {}))
    if inc.get("intent"):
        want["intent"] = inc["intent"]
    dims = ep["dimensions"]
    if any(k in want and want[k] != v for k, v in dims.items()):
        return False
    return any(k in want for k in dims)


def evaluate(truth: dict, alerts: list[dict], *, grace_minutes: float = 60.0) -> dict:
    """Recall, precision, delays, per incident kind (see the module docstring)."""
    grace = grace_minutes * 60
    episodes = _episodes(alerts)
    incidents = truth.get("incidents", [])
    matched_eps: set[str] = set()
    tolerated_eps: set[str] = set()
    per_incident = []
    for inc in incidents:
        hits = [ep for ep in episodes if _matches(ep, inc, grace)]
        matched_eps.update(ep["alert_id"] for ep in hits)
        tolerated = [ep for ep in episodes if _matches(ep, inc, grace, tolerated=True)]
        tolerated_eps.update(ep["alert_id"] for ep in tolerated)
        delay = (min(ep["start"] for ep in hits) - _epoch(inc["start"])) / 60 if hits else None
        per_incident.append({"id": inc["id"], "kind": inc["kind"], "detected": bool(hits),
                             "delay_minutes": delay, "episodes": len(hits),
                             "alert_ids": [ep["alert_id"] for ep in hits],
                             "dimensions": inc.get("dimensions", {}), "intent": inc.get("intent")})
    promos = [(_epoch(p["start"]), _epoch(p["end"])) for p in truth.get("promotions", [])]
    false_eps = [ep for ep in episodes
                 if ep["alert_id"] not in matched_eps and ep["alert_id"] not in tolerated_eps]
    for ep in false_eps:
        ep["during_promotion"] = any(s <= ep["start"] < e for s, e in promos)
    kinds = sorted({i["kind"] for i in per_incident})
    by_kind = {}
    for kind in kinds:
        rows = [i for i in per_incident if i["kind"] == kind]
        delays = [i["delay_minutes"] for i in rows if i["detected"]]
        by_kind[kind] = {"incidents": len(rows), "detected": sum(i["detected"] for i in rows),
                         "recall": sum(i["detected"] for i in rows) / len(rows),
                         "median_delay_minutes": statistics.median(delays) if delays else None}
    delays = [i["delay_minutes"] for i in per_incident if i["detected"]]
    by_metric = {}
    for metric in sorted({ep["metric"] for ep in episodes}
                         | {m for inc in incidents for m in inc.get("metrics", ())}):
        eps = [ep for ep in episodes if ep["metric"] == metric]
        true = [ep for ep in eps if ep["alert_id"] in matched_eps]
        side = [ep for ep in eps if ep["alert_id"] in tolerated_eps
                and ep["alert_id"] not in matched_eps]
        family = [(inc, row) for inc, row in zip(incidents, per_incident)
                  if metric in inc.get("metrics", ())]
        seen = [row for inc, row in family
                if any(ep["alert_id"] in row["alert_ids"] for ep in true)]
        first = [min(ep["start"] for ep in true if ep["alert_id"] in row["alert_ids"])
                 - _epoch(inc["start"]) for inc, row in family
                 if any(ep["alert_id"] in row["alert_ids"] for ep in true)]
        by_metric[metric] = {
            "episodes": len(eps), "true_episodes": len(true), "side_effect_episodes": len(side),
            "precision": (len(true) + len(side)) / len(eps) if eps else None,
            "incidents": len(family), "detected": len(seen),
            "median_delay_minutes": statistics.median(first) / 60 if first else None}
    return {
        "incidents": len(incidents),
        "detected": sum(i["detected"] for i in per_incident),
        "recall": (sum(i["detected"] for i in per_incident) / len(incidents)) if incidents else 1.0,
        "episodes": len(episodes),
        "true_episodes": len(episodes) - len(false_eps),
        "side_effect_episodes": len(tolerated_eps - matched_eps),
        "precision": ((len(episodes) - len(false_eps)) / len(episodes)) if episodes else 1.0,
        "median_delay_minutes": statistics.median(delays) if delays else None,
        "false_episodes": len(false_eps),
        "false_during_promotions": sum(ep["during_promotion"] for ep in false_eps),
        "by_kind": by_kind,
        "by_metric": by_metric,
        "per_incident": per_incident,
        "false_episode_list": [{"alert_id": ep["alert_id"], "dimensions": ep["dimensions"],
                                "metric": ep["metric"],
                                "start": dt.datetime.fromtimestamp(ep["start"], dt.timezone(dt.timedelta(hours=8))).isoformat(),
                                "during_promotion": ep["during_promotion"]} for ep in false_eps],
    }


def format_report(r: dict) -> str:
    """Human-readable summary table."""
    def fmt(x, spec=".2f"):
        return "-" if x is None else format(x, spec)
    lines = [
        f"incidents {r['incidents']}  detected {r['detected']}  recall {fmt(r['recall'])}",
        f"episodes {r['episodes']}  true {r['true_episodes']}  precision {fmt(r['precision'])}  "
        f"false {r['false_episodes']} (during promotions: {r['false_during_promotions']})"
        + (f"  side effects of an incident: {r['side_effect_episodes']}"
           if r.get("side_effect_episodes") else ""),
        f"median detection delay {fmt(r['median_delay_minutes'], '.1f')} min",
        "",
        f"{'kind':<26}{'incidents':>10}{'detected':>10}{'recall':>8}{'median delay':>14}",
    ]
    for kind, k in r["by_kind"].items():
        lines.append(f"{kind:<26}{k['incidents']:>10}{k['detected']:>10}{fmt(k['recall']):>8}"
                     f"{fmt(k['median_delay_minutes'], '.1f'):>11} min")
    if r.get("by_metric"):
        lines.append("")
        lines.append(f"{'metric':<26}{'episodes':>10}{'precision':>10}{'incidents':>10}"
                     f"{'detected':>10}{'median delay':>14}")
        for metric, m in r["by_metric"].items():
            lines.append(f"{metric:<26}{m['episodes']:>10}{fmt(m['precision']):>10}"
                         f"{m['incidents']:>10}{m['detected']:>10}"
                         f"{fmt(m['median_delay_minutes'], '.1f'):>11} min")
    missed = [i for i in r["per_incident"] if not i["detected"]]
    if missed:
        lines.append("")
        lines.append("missed: " + ", ".join(f"{i['id']} ({i['kind']} {i['dimensions']})" for i in missed))
    if r["false_episode_list"]:
        lines.append("")
        lines.append("false episodes:")
        for ep in r["false_episode_list"][:20]:
            promo = " [promotion]" if ep["during_promotion"] else ""
            lines.append(f"  {ep['start']}  {ep.get('metric', 'complaint_rate')} "
                         f"{ep['dimensions']}{promo}")
        if len(r["false_episode_list"]) > 20:
            lines.append(f"  ... and {len(r['false_episode_list']) - 20} more")
    return "\n".join(lines)
