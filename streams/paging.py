"""The alert stage of the pipeline: which alarmed slices page, and their records.

At every bucket close :class:`~streams.pipeline.Pipeline` hands the slices' evaluations
to :meth:`AlertStage._alerting`, a pipeline of small steps in the spirit of
Alertmanager's: candidates (alarmed, old enough, enough excess, not muted by feedback,
not in a maintenance window) -> explanations between slices (:mod:`streams.scope`,
resolved as a graph so one incident gives one page) -> ``for:``-style pending -> fire,
escalate (:mod:`streams.alerting`) or resolve after quiet buckets. Operators' verdicts
come in through :meth:`AlertStage.apply_feedback`.

The stage is a mixin of the pipeline (it reads and updates the pipeline's state: firing
episodes, explanations, counters, outputs); it lives in its own module so each stays
readable.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from streams.alert_context import incident_context, recent_intents
from streams.alerting import AlertEpisode, fingerprint, is_wide, severity
from streams.detection import Evaluation
from streams.feedback import QUIETING, parse_feedback

if TYPE_CHECKING:
    from streams.pipeline import _Bucket

__all__ = ["METRIC", "AlertStage"]

METRIC = "complaint_rate"


def _promotion_note(e: Evaluation) -> str:
    """What the expectation of an alert inside a promotion's effect window included."""
    if not e.promotion:
        return ""
    if e.promotion_lift != 1.0:
        return (f" | 促销「{e.promotion}」对该维度的影响尚未学到, 按预期的 {e.promotion_lift:g} 倍"
                f"谨慎判断 | promotion {e.promotion}: its effect on this slice is not learned "
                f"yet, paged only above {e.promotion_lift:g}x expected")
    return (f" | 预期已含促销「{e.promotion}」的历史影响 x{e.promotion_factor:.2f}"
            f" | expected includes the learned effect of promotion {e.promotion}"
            f" (x{e.promotion_factor:.2f})")


class AlertStage:
    """Alert lifecycle methods of :class:`~streams.pipeline.Pipeline` (see the module)."""

    def _alerting(self, bstart: int, bucket: _Bucket, evaluations: list[Evaluation]) -> None:
        bindex = bstart // self.bucket_seconds
        maintenance = self.calendar.in_maintenance(bstart)
        self._recent_complaints.append(bucket.complaint_keys)
        by_key = {e.key: e for e in evaluations}
        candidates = [e for e in evaluations
                      if e.alarmed and e.key not in self.firing and not maintenance
                      and e.key[0] not in self._silent_slices
                      and e.age_buckets >= self.warmup_buckets
                      and e.run_observed - e.run_expected >= self.min_excess
                      and not (self.feedback and self.feedback.blocks(
                          fingerprint(METRIC, self._dims(e.key)), bucket=bindex,
                          evidence=e.evidence, level=e.level))]
        candidates = self._recent_enough(candidates)
        alarmed = {e.key: e for e in evaluations if e.alarmed}
        alarmed.update({k: by_key[k] for k in self.firing if k in by_key})
        if maintenance:
            # Planned work explains what we see: nobody is paged now, and the evidence
            # gathered during the window must not page the moment it ends.
            for e in evaluations:
                if e.alarmed and e.key not in self.firing:
                    self.scorer.reset(e.key)
        for e in evaluations:
            if e.key in self.explained and e.evidence == 0.0:
                del self.explained[e.key]  # the parent's run is over
                self._explainer_excess.pop(e.key, None)
        still = {e.key for e in candidates}
        for key in [k for k in self.pending if k not in still]:
            del self.pending[key]  # the alarm did not hold
        links = {e.key: self._explainer(e, alarmed, bucket) for e in candidates}
        pages = self._paging(links, by_key)
        pages |= self._uncovered(candidates, pages, links, alarmed, bindex)
        pages = self._one_page_per_twin(pages, links, by_key)
        for e in candidates:
            child = None if e.key in pages else links[e.key]
            if child is not None:
                # One incident, one page: the child slice that explains most of this
                # slice's excess is paged; this one stays quiet until its run ends.
                if e.key not in self.explained:
                    self.counters["alerts_explained"] += 1
                    self.explained[e.key] = child
                    explainer = alarmed.get(child)
                    self._explainer_excess[e.key] = (
                        explainer.run_observed - explainer.run_expected if explainer else 0.0)
                continue
            since = self.pending.setdefault(e.key, bindex)
            if bindex - since < self.pending_buckets:
                continue  # like Prometheus' ``for:``: the alarm must hold a little first
            del self.pending[e.key]
            episode = AlertEpisode(fingerprint(METRIC, self._dims(e.key)),
                                   bindex - max(e.run_buckets - 1, 0), fired_bucket=bindex)
            self.firing[e.key] = episode
            self._update_episode(episode, e)
            self.counters["alerts_fired"] += 1
            self.out.alerts.append(self._alert_record(episode, e, bstart, bucket, "firing"))
            if episode.alert_id in self.feedback.waiting:  # replay --feedback: answered at once
                self.apply_feedback(self.feedback.waiting.pop(episode.alert_id))
        for key in sorted(set(self.firing) - {e.key for e in candidates}, key=str):
            e = by_key.get(key)
            if e is None:
                continue
            episode = self.firing[key]
            quiet = episode.note_bucket(e.observed, e.expected, self.quiet_buckets)
            if quiet:
                del self.firing[key]
                self.scorer.reset(key)
                self._release_explained(key)
                self.counters["alerts_resolved"] += 1
                self.out.alerts.append(self._alert_record(episode, e, bstart, bucket, "resolved"))
            elif self._update_episode(episode, e):
                self.counters["alerts_escalated"] += 1
                self.out.alerts.append(self._alert_record(episode, e, bstart, bucket, "firing"))

    def _recent_enough(self, candidates: list[Evaluation]) -> list[Evaluation]:
        """Candidates whose excess is *recent*: a run longer than the recent window
        (half an hour) must also show ``min_excess`` above expectation inside it.

        An incident brings its excess now. A run that crept up over hours — a slice
        whose rate was learned on a different day (湖南 with 10 complaints on day one; a
        shop whose pickup_urge share the classifier kept changing while it learned) —
        carries evidence of a baseline error spread thin, and paging it sends people to
        a slice where nothing is happening. Short runs are all recent: unchanged.
        """
        window = len(self._recent_complaints)
        long_runs = {e.key for e in candidates if e.run_buckets > window}
        if not long_runs:
            return candidates
        seen = dict.fromkeys(long_runs, 0)
        for keys_of_bucket in self._recent_complaints:
            for keys in keys_of_bucket:
                for key in keys:
                    if key in seen:
                        seen[key] += 1
        return [e for e in candidates if e.key not in seen
                or seen[e.key] - e.expected * window >= self.min_excess]

    def _release_explained(self, key: tuple) -> list[tuple[tuple, bool]]:
        """Forget every explanation that ends in ``key`` (its page is over) and restart
        those slices' CUSUM runs; return ``(slice, explained by key itself)`` pairs.

        The whole chain, not only the slices ``key`` explains directly: 广东 x 中通 kept
        quiet by m1188 (kept quiet by m1188 x fake_shipment, which paged) must not stay
        explained by m1188 once that page resolved. A busy slice's evidence is rarely
        exactly zero in a bucket it is scored in, so such a stale link used to outlive
        the incident by days and hide the next one (seed 5: a 广东 x 中通 delay wave
        paged 30 minutes late).
        """
        released, frontier = [], {key}
        while frontier:
            parents = [p for p, c in self.explained.items() if c in frontier]
            for parent in parents:
                released.append((parent, self.explained.pop(parent) == key))
                self._explainer_excess.pop(parent, None)
                self.scorer.reset(parent)
            frontier = set(parents)
        return released

    def _explainer(self, e: Evaluation, alarmed: dict, bucket) -> tuple | None:
        """Which slice explains ``e`` now. An explanation sticks for the rest of the run
        (no flapping between scopes) unless ``e`` outgrows it: a slice explained by a
        small shop in the first minutes of a carrier-wide wave must page once the wave
        is more than twice the shop."""
        sticky = self.explained.get(e.key)
        if sticky is not None:
            other = alarmed.get(sticky)
            if other is not None:  # remember how big the explaining incident got
                self._explainer_excess[e.key] = other.run_observed - other.run_expected
            if e.run_observed - e.run_expected <= 2.0 * self._explainer_excess.get(e.key, 0.0):
                return sticky
            del self.explained[e.key]
        return self.scope.explainer(e, alarmed, bucket, firing=self.firing)

    def _next_in_chain(self, key: tuple, links: dict[tuple, tuple | None]) -> tuple | None:
        """The slice that explains ``key``: this bucket's link if it is a candidate, else
        the explanation it keeps from earlier buckets."""
        return links[key] if key in links else self.explained.get(key)

    def _paging(self, links: dict[tuple, tuple | None], by_key: dict) -> set[tuple]:
        """The candidates that page, given which slice explains which (``links``).

        A candidate nothing explains pages; one explained by another stays quiet. The
        rules can chain into a cycle (A explains B explains A): then the member of the
        cycle with the most evidence pages, so an incident is never left without one.
        """
        pages = set()
        for start in links:
            path, key = [start], start
            while True:
                nxt = self._next_in_chain(key, links)
                if nxt is None:
                    if key == start:
                        pages.add(start)
                    break
                if nxt in path:
                    cycle = [by_key[k] for k in path[path.index(nxt):] if k in by_key]
                    if cycle and start == _best_scope(cycle, {e.key: e.evidence for e in cycle}):
                        pages.add(start)
                    break
                path.append(nxt)
                key = nxt
        return pages

    def _uncovered(self, candidates: list[Evaluation], pages: set[tuple], links: dict,
                   alarmed: dict[tuple, Evaluation], bindex: int) -> set[tuple]:
        """Quiet candidates whose excess no page covers, paged after all (one per incident).

        An explanation is a judgement about excess, and excess is shared: the ancestor
        中通 rose with 北京 x 中通's lost parcels, which 北京 x lost_parcel pages; when
        江苏 x 中通's parcels get lost two minutes later, 中通 still "explains" the new
        slice although no page says 江苏. So after the explanation graph has spoken, each
        quiet candidate's recent complaints are checked against the scopes of all pages
        (firing and new): if at least half of its excess lies outside every one, its
        incident has no page. Of such orphans, the most specific slice that carries
        nearly the largest uncovered excess pages first (北京 x 顺丰 rather than 顺丰);
        the others are re-checked against it, so one new incident gives one new page.

        A page already firing covers by its scope only what it was about: a rise that
        began after it paged and is sharper than that page's own rise is news under it
        (:meth:`_news_under`). While a carrier-wide 中通 page for two regions' incidents
        is still firing, 江苏's lost 中通 parcels a few minutes later page 江苏.
        """
        quiet = [e for e in candidates if e.key not in pages]
        if not quiet:
            return set()
        mine = self._recent_complaints_of(e.key for e in quiet)
        covering = set(self.firing) | pages
        window = len(self._recent_complaints)
        others: dict[tuple, list[tuple]] = {}

        def complaints_of(key: tuple) -> list[tuple]:
            # The recent complaints of a chain member, scanned once per member and call.
            found = others.get(key)
            if found is None:
                found = others[key] = [keys for b in self._recent_complaints for keys in b
                                       if key in keys]
            return found

        def own_cover(e: Evaluation) -> set[tuple]:
            # The part of e's explanation chain that lies inside e also holds e's
            # incident: 服饰 -> m1884 -> m1884 x fake_shipment covers m1884's other
            # complaints. A link to a slice mostly outside e (浙江 x 圆通 -> 圆通 x
            # damaged, rising in 江苏 too) ends it.
            found, key = set(), e.key
            while (nxt := self._next_in_chain(key, links)) and nxt not in found:
                theirs = complaints_of(nxt)
                if not theirs or sum(1 for keys in theirs if e.key in keys) < 0.6 * len(theirs):
                    break
                found.add(nxt)
                key = nxt
            return found

        def spill_of_page(e: Evaluation) -> bool:
            # Same scope, another intent, twice the excess: the classifier's spill of
            # a paged incident (the scope rules' own exception), not a new incident.
            mine_scope = {k: v for k, v in self._dims(e.key).items() if k != "intent"}
            for key in covering:
                dims = self._dims(key)
                other = alarmed.get(key)
                if other is not None and "intent" in dims and \
                        {k: v for k, v in dims.items() if k != "intent"} == mine_scope and \
                        other.run_observed - other.run_expected >= 2 * (e.run_observed - e.run_expected):
                    return True
            return False

        def quieted_by_page(e: Evaluation) -> bool:
            # Only a slice kept quiet *because of a page* can be that page's orphan; a
            # chain ending in a slice that may not page yet (still learning, too small,
            # muted) keeps its slices quiet as before.
            seen, key = {e.key}, e.key
            while (nxt := self._next_in_chain(key, links)) and nxt not in seen:
                if nxt in covering:
                    return True
                seen.add(nxt)
                key = nxt
            return False

        quiet = [e for e in quiet if quieted_by_page(e)]
        extra = {e.key: own_cover(e) for e in quiet}
        news = {e.key: self._news_under(e, bindex, alarmed) for e in quiet}

        def excess(e: Evaluation, covered_too: bool) -> float:
            # Over the recent window (a run can be older than it), against this
            # bucket's expectation for each bucket of the window.
            cover = (covering - news[e.key]) | extra[e.key]
            seen = sum(1 for keys in mine[e.key] if covered_too or cover.isdisjoint(keys))
            return seen - e.expected * window

        def orphaned(e: Evaluation) -> bool:
            # Half of e's recent excess lies outside every page, and that part alone
            # is beyond Poisson noise by the excess a page needs anyway: a diffuse
            # drizzle over many shops of a region whose incident pages elsewhere is
            # not a second incident.
            need = max(self.min_excess + 3.0 * math.sqrt(e.expected * window),
                       0.5 * excess(e, True))
            return excess(e, False) >= need and not spill_of_page(e)

        added: set[tuple] = set()
        orphans = [e for e in quiet if orphaned(e)]
        while orphans:
            best = _best_scope(orphans, {e.key: excess(e, False) for e in orphans})
            added.add(best)
            covering.add(best)
            self.explained.pop(best, None)   # it pages now: no stale explanation
            self._explainer_excess.pop(best, None)
            self.counters["alerts_uncovered"] += 1
            orphans = [e for e in orphans if e.key != best and orphaned(e)]
        return added

    def _recent_complaints_of(self, slices) -> dict[tuple, list[tuple]]:
        """Per slice of ``slices``: the slice keys of each of its complaints of the recent
        window (one pass over the window for all of them)."""
        found: dict[tuple, list[tuple]] = {key: [] for key in slices}
        for keys_of_bucket in self._recent_complaints:
            for keys in keys_of_bucket:
                for key in keys:
                    if key in found:
                        found[key].append(keys)
        return found

    def _one_page_per_twin(self, pages: set[tuple], links: dict[tuple, tuple | None],
                           by_key: dict[tuple, Evaluation]) -> set[tuple]:
        """New pages of one bucket that share their complaints are one incident: one pages.

        Two slices can each be left unexplained by the rules above and hold the same
        burst: 广东 x 中通, whose run began twenty minutes earlier on a stray complaint (its
        rise diluted over the run), and 广东 x damaged, whose run is the burst. When at
        least 80 % of each one's recent complaints are also the other's, the best scope
        (:func:`_best_scope`) pages and the other is explained by it (``links``).
        """
        if len(pages) < 2:
            return pages
        theirs = self._recent_complaints_of(pages)

        def within(a: tuple, b: tuple) -> bool:
            return bool(theirs[a]) and sum(1 for keys in theirs[a] if b in keys) >= 0.8 * len(theirs[a])

        kept = set(pages)
        for a in sorted(pages, key=str):
            if a not in kept:
                continue
            twins = [b for b in sorted(kept, key=str) if b != a and within(a, b) and within(b, a)]
            if not twins:
                continue
            group = [by_key[k] for k in (a, *twins)]
            best = _best_scope(group, {e.key: e.evidence for e in group})
            for e in group:
                if e.key != best:
                    kept.discard(e.key)
                    links[e.key] = best
                    self.counters["alerts_twinned"] += 1
        return kept

    def _news_under(self, e: Evaluation, bindex: int, alarmed: dict[tuple, Evaluation]) -> set[tuple]:
        """The firing pages whose scope holds ``e``'s complaints but not ``e``'s incident.

        A page covers by its scope what it paged for, and what its incident still
        brings. A rise under it is news when it began after the page fired; names a
        region, carrier, shop or category the page does not (another intent in the
        page's own scope is the page's incident); rose more than the rise the page
        reports predicts (the Poisson bound of the sibling rule in
        :meth:`streams.scope.IncidentScope.explainer`: a slice of a diffuse wave stays
        the wave's); and meanwhile the page's scope got no more than its usual
        complaints outside ``e`` (a shop whose fake shipments land in many regions
        keeps the one region where a few of them bunched).
        """
        began = bindex - max(e.run_buckets - 1, 0)
        recent = list(self._recent_complaints)[-max(e.run_buckets, 1):]   # e's run, at most the window
        mine = {k: v for k, v in self._dims(e.key).items() if k != "intent"}
        found = set()
        for key, page in self.firing.items():
            now = alarmed.get(key)
            if now is None or began <= page.fired_bucket or key == e.key or \
                    mine.items() <= self._dims(key).items():
                continue
            lifted = e.run_expected * page.observed / max(page.expected, 1e-9)
            if e.run_observed <= lifted + 3.0 * math.sqrt(lifted) + 1.0:
                continue
            outside = sum(1 for b in recent for keys in b if key in keys and e.key not in keys)
            usual = now.expected * len(recent)
            if outside <= usual + 3.0 * math.sqrt(usual) + 1.0:
                found.add(key)
        return found

    def _signal_feedback(self, key: tuple, rec: dict, now: int) -> dict:
        """A verdict on a firing order-surge / overdue alert (:mod:`streams.signals`):
        ``expected`` / ``false_alarm`` resolve it now and mute its fingerprint, as for
        complaint-rate alerts (the signal stage asks the same feedback book)."""
        self.feedback.record(rec, from_bucket=now)
        if rec["verdict"] not in QUIETING:
            return rec
        episode = self.signals.firing.pop(key)
        self.signals.counters["resolved"] += 1
        self._resolved_by_feedback(episode, key[0], dict(key[1:]), rec["verdict"], context={})
        return rec

    def _resolved_by_feedback(self, episode: AlertEpisode, metric: str, dims: dict,
                              verdict: str, context: dict | None = None) -> None:
        """The ``resolved`` record of an episode an operator quieted."""
        bend = self.closed_until
        where = " ".join(f"{k}={v}" for k, v in dims.items()) or "全部 (all)"
        zh = {"expected": "预期内", "false_alarm": "误报"}[verdict]
        record = {
            "alert_id": episode.alert_id, "fingerprint": episode.fingerprint, "status": "resolved",
            "severity": episode.severity, "metric": metric, "dimensions": dims,
            "ts": self._iso(bend), "bucket_start": self._iso(bend - self.bucket_seconds),
            "bucket_end": self._iso(bend), "observed": round(episode.observed, 3),
            "expected": round(episode.expected, 3), "score": 0.0,
            "summary": f"{where} 值班人员标记为{zh} | marked {verdict} by on-call",
            "contributors": [], "examples": []}
        if context is not None:
            record["context"] = context
        record["feedback"] = verdict
        self.out.alerts.append(record)

    def _update_episode(self, episode: AlertEpisode, e: Evaluation) -> bool:
        if e.run_buckets:
            episode.observed, episode.expected = e.run_observed, e.run_expected
        minutes = (e.run_buckets * self.bucket_seconds) / 60
        sev = severity(observed=episode.observed, expected=episode.expected,
                       run_minutes=minutes, wide=is_wide(self.settings.slices[e.key[0]]))
        return episode.escalate(sev)

    def _alert_record(self, episode: AlertEpisode, e: Evaluation, bstart: int,
                      bucket: _Bucket, status: str) -> dict:
        dims = self._dims(e.key)
        bend = bstart + self.bucket_seconds
        obs, exp = episode.observed, episode.expected
        ratio = obs / max(exp, 1e-9)
        where = " ".join(f"{k}={v}" for k, v in dims.items()) or "全部 (all)"
        contributors = recent_intents(self._recent_complaints, e.key, self.settings.slices)
        if not contributors:   # e.g. no intent slice configured: the bucket's own mix
            mix = bucket.intents.get(e.key, {})
            total = sum(mix.values()) or 1
            contributors = [{"dimension": "intent", "value": k, "complaints": n,
                             "share": round(n / total, 3)}
                            for k, n in sorted(mix.items(), key=lambda kv: (-kv[1], kv[0]))[:3]]
        if status == "firing":
            exp_text = f"{exp:.2f}" if exp < 1 else f"{exp:.1f}"
            zh, en = ("100 倍以上", "over 100x") if ratio >= 100 else (f"{ratio:.1f} 倍", f"{ratio:.1f}x")
            summary = (f"{where} 投诉率异常: 实际 {obs:.0f} 件, 预期 {exp_text} 件 ({zh}) | "
                       f"complaints {obs:.0f} vs {exp_text} expected ({en})")
            summary += _promotion_note(e)
        else:
            summary = f"{where} 投诉率已恢复正常 | complaint rate back to normal"
        # Inside a promotion's effect window: what the expectation included.
        promotion = ({"promotion": {"name": e.promotion,
                                    "learned_factor": round(e.promotion_factor, 3),
                                    "learned": e.promotion_lift == 1.0,
                                    "cautious_lift": round(e.promotion_lift, 3)}}
                     if e.promotion else {})
        return {
            "alert_id": episode.alert_id,
            "fingerprint": episode.fingerprint,
            "status": status,
            "severity": episode.severity,
            "metric": METRIC,
            "dimensions": dims,
            "ts": self._iso(bend),
            "bucket_start": self._iso(bstart),
            "bucket_end": self._iso(bend),
            "observed": round(obs, 3),
            "expected": round(exp, 3),
            "score": round(e.score, 6),
            "summary": summary,
            "contributors": contributors,
            "examples": [text for _, _, text in bucket.examples.get(e.key, [])],
            "context": incident_context(self._recent_complaints, e.key, self.settings.slices),
            **promotion,
        }

    def apply_feedback(self, record: dict) -> dict:
        """Apply an operator's verdict on an alert (rules in :mod:`streams.feedback`).

        ``expected`` / ``false_alarm`` on a firing episode resolve it now (a ``resolved``
        record with ``"feedback"``) and mute its slice; a verdict on an episode that has
        not fired yet waits for it. Returns the validated record; a bad one raises
        :class:`~riskwatch.errors.ConfigError`.
        """
        rec = record if "start_bucket" in record else parse_feedback(record)
        now = self.closed_until // self.bucket_seconds if self.closed_until is not None else None
        key = next((k for k, ep in self.firing.items() if ep.alert_id == rec["alert_id"]), None)
        signal = next((k for k, ep in self.signals.firing.items() if ep.alert_id == rec["alert_id"]), None)
        if signal is not None:
            return self._signal_feedback(signal, rec, now)
        if key is None:
            if now is None or rec["start_bucket"] >= now:
                self.feedback.waiting[rec["alert_id"]] = rec
            else:
                self.feedback.record(rec, from_bucket=now)
            return rec
        self.feedback.record(rec, from_bucket=now)
        if rec["verdict"] not in QUIETING:
            return rec
        episode = self.firing.pop(key)
        self.scorer.reset(key)
        for parent in self._release_explained(key):
            if parent[1]:   # the slices this page kept quiet, not their own parents
                self.feedback.learn(fingerprint(METRIC, self._dims(parent[0])), rec["verdict"],
                                    from_bucket=now)
        self.counters["alerts_resolved"] += 1
        self._resolved_by_feedback(episode, METRIC, self._dims(key), rec["verdict"])
        return rec


def _best_scope(group: list[Evaluation], strength: dict[tuple, float]) -> tuple:
    """The slice of ``group`` (one incident's slices) that should page.

    Strength (evidence, or uncovered excess) first, but near-ties are ties: the
    evidence of a strong burst is capped, so every slice it raises has the same. Among
    the slices within 20 % of the strongest, the one expected to see the fewest
    complaints is the most specific scope holding the incident (广东 x 中通 rather than
    the nationwide delivery_delay slice): it pages.

    >>> from streams.detection import Evaluation
    >>> def ev(key, obs, exp):
    ...     return Evaluation(key, obs, exp, 100.0, 1.0, 33.0, 11.0, True, obs, exp, 1, 300)
    >>> burst = [ev((6,), 34, 0.7), ev((1, "广东", "中通"), 31, 0.6), ev((4, "广东"), 31, 0.9)]
    >>> _best_scope(burst, {e.key: 33.0 for e in burst})
    (1, '广东', '中通')
    """
    top = max(strength.values())
    near = [e for e in group if strength[e.key] >= 0.8 * top] if top > 0 else group
    return min(near, key=lambda e: (e.expected, -len(e.key), str(e.key))).key

