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
incident / episodes (each ``None``, printed ``n/a``, when it would divide by zero: a
manifest without incidents is no evidence of perfect recall); delay = first matching episode start - incident start. ``by_metric``
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


def _time_problem(value: object, field: str) -> str | None:
    """Why ``value`` is not an RFC 3339 time with a UTC offset (``None``: it is one). The
    value is not quoted: a hand-edited manifest is a user file, and may hold anything."""
    if not isinstance(value, str):
        return f"no {field!r} time" if value is None else f"{field!r} is not a string"
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return f"{field!r} is not an RFC 3339 time"
    if when.tzinfo is None:   # a naive time would be read in this machine's zone
        return f"{field!r} has no UTC offset"
    return None


def _window_problem(record: dict) -> str | None:
    """Why ``record``'s ``start``/``end`` window cannot be scored (``None``: it can)."""
    problem = _time_problem(record.get("start"), "start") or _time_problem(record.get("end"), "end")
    if problem:
        return problem
    if _epoch(record["end"]) < _epoch(record["start"]):
        return "'end' is before 'start'"
    return None


def _incident_problem(inc: object) -> str | None:
    """Why ``inc`` is not an incident :func:`evaluate` and the report can score (``None``:
    it is one). Each field checked is one they read; a wrong one was a KeyError or
    ValueError traceback, or (a string as 'metrics') a silent substring match."""
    if not isinstance(inc, dict):
        return f"a JSON {type(inc).__name__}, not an incident object"
    for field in ("id", "kind"):
        if not isinstance(inc.get(field), str) or not inc[field]:
            return f"no {field!r} (a non-empty string)"
    problem = _window_problem(inc)
    if problem:
        return problem
    if not isinstance(inc.get("dimensions", {}), dict):
        return "'dimensions' is not an object"
    if inc.get("intent") is not None and not isinstance(inc["intent"], str):
        return "'intent' is not a string"
    for field in ("metrics", "tolerated_metrics"):
        value = inc.get(field, [])
        if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
            return f"{field!r} is not a list of metric names"
    effect_end = inc.get("effect_end", {})
    if not isinstance(effect_end, dict):
        return "'effect_end' is not an object"
    for metric, value in effect_end.items():
        problem = _time_problem(value, "effect_end")
        if problem:
            return f"{problem} for metric {metric!r}"
    return None


def load_manifest(path: str | Path) -> dict:
    """A simulator manifest (``riskwatch simulate --manifest``), checked.

    Raises :class:`InputError` naming the file, the incident (or promotion) by its place
    in the list and the field, for the first one :func:`evaluate` could not score.
    """
    try:
        data = orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise InputError(f"cannot read manifest {path}: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise InputError(f"manifest {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("incidents"), list):
        raise InputError(f"manifest {path} has no 'incidents' list (is it a simulator manifest?)")
    incidents = data["incidents"]
    seen: dict[str, int] = {}
    for n, inc in enumerate(incidents, 1):
        problem = _incident_problem(inc)
        if not problem and inc["id"] in seen:   # the report finds an incident by its id
            problem = f"'id' is the same as incident {seen[inc['id']]}'s"
        if problem:
            raise InputError(f"--truth {path}, incident {n} of {len(incidents)}: {problem}")
        seen[inc["id"]] = n
    promotions = data.get("promotions", [])
    if not isinstance(promotions, list):
        raise InputError(f"--truth {path}: 'promotions' is not a list")
    for n, promo in enumerate(promotions, 1):
        problem = (_window_problem(promo) if isinstance(promo, dict)
                   else f"a JSON {type(promo).__name__}, not a promotion object")
        if problem:
            raise InputError(f"--truth {path}, promotion {n} of {len(promotions)}: {problem}")
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


#: The states an alert record can report (streams.paging and streams.signals write them).
_STATUSES = ("firing", "resolved")


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
    if record["status"] not in _STATUSES:   # was skipped without a word
        return "'status' is neither 'firing' nor 'resolved'"
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
        # None, not 1.0, when there is nothing to divide by: a manifest without incidents
        # (or a run without alerts) is no evidence of a perfect detector.
        "recall": (sum(i["detected"] for i in per_incident) / len(incidents)) if incidents else None,
        "episodes": len(episodes),
        "true_episodes": len(episodes) - len(false_eps),
        "side_effect_episodes": len(tolerated_eps - matched_eps),
        "precision": ((len(episodes) - len(false_eps)) / len(episodes)) if episodes else None,
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
        f"incidents {r['incidents']}  detected {r['detected']}  recall "
        + ("n/a (no incidents in the manifest)" if r["recall"] is None else fmt(r["recall"])),
        f"episodes {r['episodes']}  true {r['true_episodes']}  precision "
        + ("n/a (no alerts)" if r["precision"] is None else fmt(r["precision"]))
        + f"  false {r['false_episodes']} (during promotions: {r['false_during_promotions']})"
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
