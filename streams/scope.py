"""Alert scope: "one incident, one page".

When an incident raises complaints, many slices rise together: the hub's region x
carrier, the region, the carrier, the intent, merchants shipping through the hub. Only
the slice that best explains the excess should page; :class:`IncidentScope` decides,
for an alarmed slice, whether another alarmed slice explains it better.
"""

from __future__ import annotations

import collections
import math

from riskwatch.settings import PipelineSettings
from streams.detection import Evaluation

__all__ = ["IncidentScope"]


class IncidentScope:
    """Explanation rules between alarmed slices (see :meth:`explainer`).

    Parameters
    ----------
    settings
        For the slice list (dimension names of each slice kind).
    recent_complaints
        Per recent bucket, the slice keys of each complaint (filled by the pipeline).
    explain_share
        Share of a slice's excess a more specific slice must carry to page instead.
    explained
        The pipeline's map of quiet slices to the slice paged instead (read only).
    """

    def __init__(self, settings: PipelineSettings, recent_complaints: collections.deque,
                 explain_share: float, explained: dict | None = None) -> None:
        self.settings = settings
        self.explained = explained if explained is not None else {}  # the pipeline's, shared
        self.recent_complaints = recent_complaints
        self.explain_share = explain_share
        # The global slice never pages, so it explains nothing: an incident anywhere
        # is a small share of the market's excess.
        self.silent = {i for i, dims in enumerate(settings.slices) if not dims}

    def _dims(self, key: tuple) -> dict[str, str]:
        return dict(zip(self.settings.slices[key[0]], key[1:]))

    def explainer(self, e: Evaluation, alarmed: dict[tuple, Evaluation], bucket=None,
                  firing=()) -> tuple | None:
        """The alarmed slice that explains ``e``'s excess better than ``e`` itself, if any.

        "One incident, one page". ``B`` explains ``e`` when it is

        - a *descendant* (more dimensions, same values) carrying at least
          ``explain_share`` of ``e``'s excess: 广东 x 中通 explains 广东; or
        - an *ancestor* of which ``e`` carries less than ``explain_share`` of the
          excess, unless the ancestor's excess is already another incident's
          (:meth:`_ancestor_free`): during a shop's quality incident the shop explains
          its shop x other slice (complaints the classifier put elsewhere); or
        - a *sibling* (neither ancestor nor descendant, no conflicting values) that
          holds most of ``e``'s complaints of the last half hour, has the larger excess,
          and whose own rise (observed/expected) predicts ``e``'s within Poisson noise
          (during a nationwide 邮政EMS damage wave, EMS explains m1563, a shop
          shipping with EMS; it does not explain a shop of its own), or that is more
          anomalous (higher observed/expected) and whose own complaints mostly lie in
          ``e`` while carrying most of ``e``'s excess (one shop's fake shipments
          explain its home region's fake_shipment rise); or
        - a *sibling* across ``e`` (no shared dimension; ``e`` without intent) already
          paging that holds most of ``e``'s recent excess, when ``e``'s recent complaints
          outside it are within Poisson noise of ``e``'s expectation; or
        - the same scope with another intent and twice the excess (classifier spill).

        The rules are asymmetric in the excess shares, so two slices never explain
        each other and one of them pages.
        """
        mine = self._dims(e.key)
        excess = e.run_observed - e.run_expected
        ratio = e.run_observed / max(e.run_expected, 1e-9)
        siblings = []
        for key in sorted(alarmed, key=str):
            if key == e.key:
                continue
            other = alarmed[key]
            dims = self._dims(key)
            other_excess = other.run_observed - other.run_expected
            if mine.items() <= dims.items():          # a descendant
                if other_excess >= self.explain_share * excess:
                    return key
            elif dims.items() <= mine.items():        # an ancestor
                if key[0] not in self.silent and excess < self.explain_share * other_excess:
                    # Unless the ancestor's excess is already another incident's: while
                    # 浙江 x 顺丰 is paging for 浙江, a rise of 浙江 x 圆通 is news.
                    if self._ancestor_free(mine, key, excess, alarmed):
                        return key
                continue
            elif not any(mine[k] != v for k, v in dims.items() if k in mine and k != "intent"):
                siblings.append(key)
        if not siblings:
            return None
        # Recent complaints of e, of each sibling, and of both.
        counts = {key: [0, 0] for key in siblings}   # [in sibling, in both]
        mine_total = 0
        for keys_of_bucket in self.recent_complaints:
            for keys in keys_of_bucket:
                in_mine = e.key in keys
                mine_total += in_mine
                for key in siblings:
                    if key in keys:
                        counts[key][0] += 1
                        counts[key][1] += in_mine
        # Against a sibling that already pages, a long run counts only its recent
        # excess: a category that crept up for hours and then took a paged shop's fake
        # shipments is the shop's incident now, not a larger one of its own (backtest
        # seed 7: 食品 paged beside m0185 x fake_shipment).
        window = len(self.recent_complaints)
        recent = excess if e.run_buckets <= 2 * window else \
            min(excess, max(mine_total - e.expected * window, 0.0))
        for key in siblings:
            other = alarmed[key]
            if mine.get("intent") is not None and self._dims(key).get("intent") not in (None, mine["intent"]):
                continue  # another intent: only the spill rule below applies
            other_excess = other.run_observed - other.run_expected
            theirs, both = counts[key]
            # Most of e's recent complaints, or as many as half its excess, are also
            # B's; B's incident is the larger; and e rose no more than B's own rise
            # predicts (a shop shipping with EMS during an EMS damage wave, not a shop
            # with a problem of its own inside a busy category).
            if mine_total and both >= 0.5 * min(mine_total, excess) and excess < other_excess:
                lifted = e.run_expected * other.run_observed / max(other.run_expected, 1e-9)
                if e.run_observed <= lifted + 3.0 * math.sqrt(lifted) + 1.0:
                    return key
            # A page across e already holds the rise: e is a total (no intent) and B
            # shares none of its dimensions (a carrier's wave passing through a region),
            # e's recent complaints outside B are within Poisson noise of e's own
            # expectation, and B holds most of e's recent excess (backtest seed 13:
            # 江苏 beside 申通 x damaged). A rise of e's own shows outside B within the
            # window, and e pages then. Nested scopes are the rules above.
            if key in firing and mine_total and excess < other_excess and \
                    "intent" not in mine and _across(mine, self._dims(key)):
                usual = e.expected * window
                outside = mine_total - both
                if outside <= usual + 3.0 * math.sqrt(usual) + 1.0 and \
                        both >= 0.5 * (mine_total - usual):
                    return key
            if other.run_observed / max(other.run_expected, 1e-9) < ratio:
                continue
            if theirs and both >= 0.5 * theirs and other_excess >= self.explain_share * (
                    recent if key in firing else excess):
                return key
        return self._misclassified_spill(e, mine, excess, siblings, alarmed)

    def _ancestor_free(self, mine: dict, ancestor: tuple, excess: float, alarmed: dict) -> bool:
        """Whether an alarmed ancestor's excess can explain ``e`` (dims ``mine``).

        Not when the ancestor is already explained by a slice of another scope (while
        浙江 x 顺丰 pages for 浙江, a rise of 浙江 x 圆通 is a second incident), nor by
        the same scope with another intent unless that is twice ``e``'s excess (then
        ``e`` is the classifier's spill; otherwise a second incident)."""
        via = self.explained.get(ancestor)
        if via is None:
            return True
        theirs = self._dims(via)
        if _conflict(mine, theirs):
            return False
        if mine.get("intent") is not None and theirs.get("intent") not in (None, mine["intent"]):
            other = alarmed.get(via)
            return other is not None and other.run_observed - other.run_expected >= 2 * excess
        return True

    def _misclassified_spill(self, e, mine, excess, siblings, alarmed) -> tuple | None:
        """Same scope, another intent, at least twice the excess: the classifier's spill."""
        my_intent = mine.get("intent")
        if my_intent is None:
            return None
        for key in siblings:
            dims = self._dims(key)
            other = alarmed[key]
            same_scope = {k for k in dims if k != "intent"} == {k for k in mine if k != "intent"}
            if same_scope and len(dims) > 1 and dims.get("intent") not in (None, my_intent) \
                    and other.run_observed - other.run_expected >= 2 * excess:
                return key
        return None


def _across(mine: dict[str, str], theirs: dict[str, str]) -> bool:
    """``theirs`` cuts across ``mine``: it names a scope (a dimension besides the
    intent) and shares no dimension with ``mine`` (申通 x damaged across 江苏)."""
    return any(k != "intent" for k in theirs) and mine.keys().isdisjoint(theirs)


def _conflict(a: dict[str, str], b: dict[str, str]) -> bool:
    """Two scopes that name different values of a dimension other than the intent."""
    return any(k != "intent" and k in b and b[k] != v for k, v in a.items())
