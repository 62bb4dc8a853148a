"""Backtest report: one self-contained HTML page with a chart per incident.

``riskwatch evaluate --truth M --alerts A --aggregates AGG.jsonl --report report.html``
writes it. Each incident gets the series of its own slice (the incident's dimensions
plus its intent when that slice is watched, e.g. ``merchant_id|intent``): complaints
observed per 5-minute bucket against the detector's expected count, a Poisson band
(0.5 %-99.5 %) around it, the incident window shaded, promotions shaded grey, and the
alert marks of the episodes that matched it (fire, escalate, resolve). False episodes
get the same chart on their own slice. A summary table gives recall and delay per
incident kind and precision per alert scope.

The expected count comes from the aggregates rows ``riskwatch replay --aggregates-out``
writes; a slice is scored only in buckets with complaints (or while alerting), so in
the other buckets the expected count is the slice's last scored rate times its
exposure, marked as interpolated in the legend.

Charts are matplotlib SVG, inlined (no JavaScript, no network): matplotlib is the
plotting library the Python data world maintains and reviews, its SVG output is a few
tens of kB per chart (plotly would inline a 4.6 MB script), and with
``svg.fonttype = "none"`` text stays text, so Chinese region names are drawn by the
reader's browser fonts instead of needing a CJK font on the machine that builds it.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path

import orjson

from riskwatch.errors import InputError

__all__ = ["build_report", "load_series", "slice_label", "write_report"]

#: Hours of context drawn before an incident's start and after its end.
BEFORE_HOURS, AFTER_HOURS = 12.0, 6.0
MARK_STYLE = {"fire": ("#d9480f", "-"), "escalate": ("#c92a2a", "--"), "resolve": ("#2b8a3e", ":")}


def _epoch(ts: str) -> float:
    return dt.datetime.fromisoformat(ts).timestamp()


def _dims_key(dims: dict) -> frozenset:
    return frozenset(dims.items())


def slice_label(dims: dict) -> str:
    """``region=广东 · carrier=中通`` (``all`` for the global slice).

    >>> slice_label({"region": "广东", "intent": "damaged"})
    'region=广东 · intent=damaged'
    """
    return " · ".join(f"{k}={v}" for k, v in dims.items()) or "all"


# -- data ----------------------------------------------------------------------------------
def load_series(path: str | Path, wanted: dict[frozenset, tuple[float, float]],
                progress: Callable[[str], None] | None = None) -> dict[frozenset, list[dict]]:
    """Aggregates rows of the ``wanted`` slices (dims key -> (from, to) epoch window).

    The file can be large (a row per slice and bucket): only rows whose ``slice`` field
    names a wanted slice are parsed (one dict lookup per line), and a progress line is
    reported every ~10 %.
    """
    path = Path(path)
    try:
        total = path.stat().st_size
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read aggregates {path}: {exc.strerror}") from None
    out: dict[frozenset, list[dict]] = {k: [] for k in wanted}
    verdicts: dict[bytes, bool] = {}   # slice field -> wanted?
    done, next_report = 0, 0.1
    with handle:
        for n, line in enumerate(handle, 1):
            done += len(line)
            if progress and done >= next_report * total:
                progress(f"report: reading aggregates {done / total:.0%}")
                next_report += 0.1
            at = line.find(b'"slice":"')
            if at < 0:
                if not line.strip():
                    continue
                raise InputError(f"{path}:{n}: not an aggregates row, it has no slice "
                                 "(write them with riskwatch replay --aggregates-out)")
            name = line[at + 9:line.find(b'"', at + 9)]
            verdict = verdicts.get(name)
            if verdict is None:
                verdict = verdicts[name] = _slice_key(name) in wanted
            if not verdict:
                continue
            try:
                row = orjson.loads(line)
                key = _dims_key(row["dimensions"])
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                raise InputError(f"{path}:{n}: not an aggregates row "
                                 "(write them with riskwatch replay --aggregates-out)") from None
            window = wanted.get(key)
            if window and window[0] <= _epoch(row["bucket_start"]) <= window[1]:
                out[key].append(row)
    return out


def _slice_key(name: bytes) -> frozenset:
    # The writer's slice field: "region=广东|carrier=中通", or "all".
    text = name.decode("utf-8", "replace")
    if text == "all":
        return frozenset()
    return frozenset(tuple(part.split("=", 1)) for part in text.split("|") if "=" in part)


def _exposure_key(dims: dict) -> frozenset:
    return _dims_key({k: v for k, v in dims.items() if k != "intent"})


def _chart_series(rows: list[dict], parent_rows: list[dict], lo: float, hi: float,
                  bucket_seconds: float, quantity: str = "complaints") -> dict:
    """Bucket-aligned observed / expected / interpolated flags over [lo, hi].

    ``quantity`` "orders" charts the slice's orders (an order-surge incident); the
    aggregates carry no order expectation, so that chart has no expected band.
    """
    if quantity == "orders":
        by_bucket = {_epoch(r["bucket_start"]): r for r in rows}
        start = lo - lo % bucket_seconds
        times = [start + i * bucket_seconds for i in range(int((hi - start) // bucket_seconds) + 1)]
        return {"t": times, "observed": [by_bucket[t]["orders"] if t in by_bucket else 0 for t in times],
                "expected": [None] * len(times), "interpolated": [True] * len(times),
                "quantity": "orders"}
    by_bucket = {_epoch(r["bucket_start"]): r for r in rows}
    parent = {_epoch(r["bucket_start"]): r for r in parent_rows}
    start = lo - lo % bucket_seconds
    times, observed, expected, interpolated = [], [], [], []
    rate = None
    scored = sorted((t, r) for t, r in by_bucket.items() if r.get("expected") is not None and r["exposure"] > 0)
    if scored:
        rate = scored[0][1]["expected"] / scored[0][1]["exposure"]
    t = start
    exposure = 0.0
    while t <= hi:
        row = by_bucket.get(t)
        # No row: the slice had no orders in the bucket; its exposure (orders spread over
        # the complaint lag) is still there, so the last known value carries forward.
        exposure = (row or parent.get(t) or {}).get("exposure", exposure) or exposure
        if row is not None and row.get("expected") is not None:
            value = row["expected"]
            if exposure > 0:
                rate = value / exposure
            interpolated.append(False)
        else:
            value = rate * exposure if rate is not None else None
            interpolated.append(True)
        times.append(t)
        observed.append(row["complaints"] if row else 0)
        expected.append(value)
        t += bucket_seconds
    return {"t": times, "observed": observed, "expected": expected, "interpolated": interpolated,
            "quantity": "complaints"}


def _marks(alerts: list[dict], alert_ids: set[str]) -> list[dict]:
    """fire / escalate (severity rose) / resolve marks of the given episodes."""
    marks, severity = [], {}
    for a in alerts:
        aid = a.get("alert_id")
        if aid not in alert_ids:
            continue
        if a.get("status") == "resolved":
            kind = "resolve"
        elif aid not in severity:
            kind = "fire"
        elif a.get("severity") != severity[aid]:
            kind = "escalate"
        else:
            continue
        severity[aid] = a.get("severity")
        marks.append({"kind": kind, "t": _epoch(a["ts"]), "severity": a.get("severity"),
                      "scope": slice_label(a.get("dimensions", {}))})
    return marks


# -- charts -------------------------------------------------------------------------------
def _svg_chart(series: dict, title: str, window: tuple[float, float], marks: list[dict],
               promotions: list[tuple[float, float]], tz: dt.tzinfo,
               window_label: str = "incident window") -> str:
    from matplotlib import dates as mdates
    from matplotlib.figure import Figure
    from scipy.stats import poisson

    def when(t: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(t, tz)

    fig = Figure(figsize=(9.5, 2.9), dpi=96)
    ax = fig.add_subplot()
    xs = [when(t) for t in series["t"]]
    exp = series["expected"]
    if xs:
        ax.set_xlim(xs[0], xs[-1])
    for s, e in promotions:
        ax.axvspan(when(s), when(e), color="#adb5bd", alpha=0.25, lw=0, label="promotion")
    ax.axvspan(when(window[0]), when(window[1]), color="#ffa8a8", alpha=0.35, lw=0, label=window_label)
    known = [(x, e) for x, e in zip(xs, exp) if e is not None]
    if known:
        kx, ke = zip(*known)
        low = poisson.ppf(0.005, [max(e, 1e-9) for e in ke])
        high = poisson.ppf(0.995, [max(e, 1e-9) for e in ke])
        ax.fill_between(kx, low, high, step="post", color="#74c0fc", alpha=0.35, lw=0,
                        label="expected band (99 %)")
        ax.step(kx, ke, where="post", color="#1c7ed6", lw=1.2, label="expected (interpolated when unscored)")
    quantity = series.get("quantity", "complaints")
    ax.step(xs, series["observed"], where="post", color="#212529", lw=1.3, label=f"observed {quantity}")
    top = max([*series["observed"], *(e for e in exp if e is not None), 1.0])
    for m in marks:
        color, style = MARK_STYLE[m["kind"]]
        ax.axvline(when(m["t"]), color=color, ls=style, lw=1.4, label=f"alert {m['kind']}")
        if m["kind"] != "resolve" and m["severity"]:
            # The severity at fire / escalation, next to its mark.
            ax.annotate(m["severity"], (when(m["t"]), top * 1.05), rotation=90, fontsize=7,
                        color=color, va="bottom", ha="right")
    ax.set_ylim(0, top * 1.45)
    ax.set_ylabel(f"{quantity} / 5 min")
    ax.set_title("\n".join(textwrap.wrap(title, 110)), fontsize=10, loc="left")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M", tz=tz))
    ax.tick_params(labelsize=8)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=7, loc="upper left", ncols=4, frameon=False)
    fig.tight_layout()
    return svg_text(fig)


def svg_text(fig) -> str:
    """``fig`` as an ``<svg>`` element to inline in an HTML page (also ``riskwatch report``)."""
    buf = io.StringIO()
    with warnings.catch_warnings():
        # Layout measures CJK labels with matplotlib's own font, which lacks the glyphs;
        # the text is written as text (svg.fonttype none) and the browser draws it.
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    # Drop the RDF metadata block (creator, format): noise inside an HTML page.
    start, end = svg.find("<metadata>"), svg.find("</metadata>")
    if 0 <= start < end:
        svg = svg[:start] + svg[end + len("</metadata>"):]
    return svg


# -- the page -----------------------------------------------------------------------------
def build_report(result: dict, truth: dict, alerts: list[dict], aggregates: str | Path, *,
                 bucket_seconds: float = 300.0,
                 progress: Callable[[str], None] | None = None) -> str:
    """The report's HTML. ``result`` is :func:`riskwatch.evaluate.evaluate`'s output."""
    import matplotlib
    matplotlib.rcParams["svg.fonttype"] = "none"
    matplotlib.rcParams["font.family"] = ["Noto Sans CJK SC", "DejaVu Sans", "sans-serif"]
    import logging
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)

    incidents = {i["id"]: i for i in truth.get("incidents", [])}
    tz = dt.timezone(dt.timedelta(hours=8))
    if incidents:
        tz = dt.datetime.fromisoformat(next(iter(incidents.values()))["start"]).tzinfo or tz
    promotions = [(_epoch(p["start"]), _epoch(p["end"])) for p in truth.get("promotions", [])]
    first_alert = {}
    for a in alerts:
        first_alert.setdefault(a.get("alert_id"), a)
    episodes_end = {}
    for a in alerts:
        if a.get("status") == "resolved":
            episodes_end[a.get("alert_id")] = _epoch(a["ts"])
    # What to chart: (section, id, title, dims, window, alert ids)
    charts = []
    for row in result["per_incident"]:
        inc = incidents[row["id"]]
        dims = dict(inc.get("dimensions", {}))
        if inc.get("intent"):
            dims["intent"] = inc["intent"]
        status = (f"detected, delay {row['delay_minutes']:.0f} min" if row["detected"] else "MISSED")
        title = f"{row['id']} {row['kind']} — {slice_label(dims)} ({status})"
        # An incident only the order-surge detector sees (a brushing shop) is a rise of
        # orders, not complaints: chart what rose.
        quantity = "orders" if set(inc.get("metrics", ())) == {"order_surge"} else "complaints"
        charts.append(("incident", row["id"], title, dims, (_epoch(inc["start"]), _epoch(inc["end"])),
                       set(row.get("alert_ids", [])), dict(inc.get("dimensions", {})), quantity))
    for ep in result["false_episode_list"]:
        start = _epoch(ep["start"])
        end = episodes_end.get(ep["alert_id"], start + bucket_seconds)
        promo = " during a promotion" if ep["during_promotion"] else ""
        title = f"false episode{promo} — {slice_label(ep['dimensions'])}"
        quantity = "orders" if ep.get("metric") == "order_surge" else "complaints"
        charts.append(("false", ep["alert_id"], title, dict(ep["dimensions"]), (start, end),
                       {ep["alert_id"]}, None, quantity))
    wanted: dict[frozenset, tuple[float, float]] = {}

    def want(dims: dict, lo: float, hi: float) -> None:
        key = _dims_key(dims)
        old = wanted.get(key)
        wanted[key] = (min(lo, old[0]), max(hi, old[1])) if old else (lo, hi)

    for _, _, _, dims, (s, e), _, fallback, _ in charts:
        lo, hi = s - BEFORE_HOURS * 3600, e + AFTER_HOURS * 3600
        want(dims, lo, hi)
        want({k: v for k, v in dims.items() if k != "intent"}, lo, hi)
        if fallback is not None:
            want(fallback, lo, hi)
    rows = load_series(aggregates, wanted, progress)

    sections = {"incident": [], "false": []}
    for n, (section, ident, title, dims, (s, e), ids, fallback, quantity) in enumerate(charts, 1):
        if progress:
            progress(f"report: chart {n}/{len(charts)}")
        key = _dims_key(dims)
        if not rows.get(key) and fallback is not None and rows.get(_dims_key(fallback)):
            # The slice with the intent was never watched (no complaint of that intent):
            # chart the incident's dimensions alone.
            key_dims = dims
            dims, key = fallback, _dims_key(fallback)
            title += f" — shown: {slice_label(dims)}, the {slice_label(key_dims)} slice was never watched"
        lo, hi = s - BEFORE_HOURS * 3600, e + AFTER_HOURS * 3600
        series = _chart_series(rows.get(key, []), rows.get(_exposure_key(dims), []), lo, hi,
                               bucket_seconds, quantity)
        svg = _svg_chart(series, title, (s, e), _marks(alerts, ids), promotions, tz,
                         "incident window" if section == "incident" else "alert episode")
        sections[section].append(f'<figure class="chart" id="{html.escape(ident)}">{svg}</figure>')
    return _page(result, alerts, sections)


def _fmt(x, spec=".2f") -> str:
    return "–" if x is None else format(x, spec)


def _page(result: dict, alerts: list[dict], sections: dict[str, list[str]]) -> str:
    esc = html.escape
    by_scope: dict[str, list[int]] = {}
    false_ids = {ep["alert_id"] for ep in result["false_episode_list"]}
    seen = set()
    for a in alerts:
        aid = a.get("alert_id")
        if aid in seen or a.get("status") != "firing":
            continue
        seen.add(aid)
        scope = "×".join(a.get("dimensions", {})) or "all"
        tally = by_scope.setdefault(scope, [0, 0])
        tally[0] += aid not in false_ids
        tally[1] += 1
    kind_rows = "".join(
        f"<tr><td>{esc(kind)}</td><td>{k['incidents']}</td><td>{k['detected']}</td>"
        f"<td>{_fmt(k['recall'])}</td><td>{_fmt(k['median_delay_minutes'], '.1f')}</td></tr>"
        for kind, k in result["by_kind"].items())
    scope_rows = "".join(
        f"<tr><td>{esc(scope)}</td><td>{t}</td><td>{n}</td><td>{_fmt(t / n)}</td></tr>"
        for scope, (t, n) in sorted(by_scope.items()))
    incident_rows = "".join(
        f"<tr><td><a href=\"#{esc(i['id'])}\">{esc(i['id'])}</a></td><td>{esc(i['kind'])}</td>"
        f"<td>{esc(slice_label(i['dimensions']))}</td><td>{esc(i.get('intent') or '')}</td>"
        f"<td class=\"{'ok' if i['detected'] else 'bad'}\">{'yes' if i['detected'] else 'missed'}</td>"
        f"<td>{_fmt(i['delay_minutes'], '.0f')}</td><td>{i['episodes']}</td></tr>"
        for i in result["per_incident"])
    false_html = "".join(sections["false"]) or "<p>No false episodes.</p>"
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>riskwatch backtest report</title>
<style>
body {{ font-family: "Noto Sans CJK SC", "Noto Sans SC", "PingFang SC", "Microsoft YaHei", sans-serif;
       margin: 1.5em auto; max-width: 1000px; color: #212529; }}
table {{ border-collapse: collapse; margin: .5em 0 1.5em; font-size: 14px; }}
td, th {{ border-bottom: 1px solid #dee2e6; padding: 3px 10px; text-align: left; }}
.ok {{ color: #2b8a3e; }} .bad {{ color: #c92a2a; font-weight: bold; }}
.figures span {{ display: inline-block; margin-right: 2em; font-size: 18px; }}
figure.chart {{ margin: 0 0 1em; }} figure.chart svg {{ width: 100%; height: auto; }}
</style></head><body>
<h1>riskwatch backtest report</h1>
<p class="figures">
<span>recall <b>{_fmt(result['recall'])}</b> ({result['detected']}/{result['incidents']})</span>
<span>precision <b>{_fmt(result['precision'])}</b> ({result['true_episodes']}/{result['episodes']})</span>
<span>median delay <b>{_fmt(result['median_delay_minutes'], '.1f')} min</b></span>
<span>false episodes <b>{result['false_episodes']}</b> (promotions: {result['false_during_promotions']})</span>
</p>
<h2>By incident kind</h2>
<table><tr><th>kind</th><th>incidents</th><th>detected</th><th>recall</th><th>median delay (min)</th></tr>
{kind_rows}</table>
<h2>Precision by alert scope</h2>
<table><tr><th>scope</th><th>true episodes</th><th>episodes</th><th>precision</th></tr>{scope_rows}</table>
<h2>Incidents</h2>
<table><tr><th>incident</th><th>kind</th><th>scope</th><th>intent</th><th>detected</th><th>delay (min)</th>
<th>episodes</th></tr>{incident_rows}</table>
<p>Each chart: complaints observed per bucket (black), the detector's expected count (blue; between
scored buckets its last rate times the slice's exposure) with a 99 % Poisson band, the incident window
(red), promotions (grey), and alert marks: fire, escalate (severity rose), resolve. An incident that only
the order-surge detector sees (a brushing shop) charts the shop's orders per bucket instead, without a band:
the detector's expectation is in the alert summaries.</p>
<section id="incidents">{''.join(sections['incident'])}</section>
<h2>False episodes</h2>
<section id="false-episodes">{false_html}</section>
</body></html>
"""


def write_report(path: str | Path, page: str) -> None:
    try:
        Path(path).write_text(page, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write report {path}: {exc.strerror}") from None
