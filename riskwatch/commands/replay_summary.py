"""What ``riskwatch replay`` tells its user about input it could not use.

Bad lines never stop a replay (they become dead letters), so the summary is where a
user learns that something was left out. Each of these went unsaid before, exit 0:

- why lines were dead-lettered: the summary counts them by reason;
- that events were refused as too far ahead in time (a file with a gap of more than
  ``--max-time-jump-seconds``, e.g. two days' files two weeks apart, concatenated): all of
  the second part was dropped; a warning names the count and the flag;
- that dead letters exist but were kept nowhere (no ``--dead-letters-out``, no store);
- that nothing in the file was an event (a pretty-printed JSON file, a binary): an error,
  after the outputs were written, so the dead letters still say line by line why;
- where a Ctrl-C stopped the run and which outputs are therefore partial.
"""

from __future__ import annotations

from collections import Counter

from riskwatch.commands import warn as _warn
from riskwatch.errors import InputError

__all__ = ["DeadLetterTally", "check_replay_result", "interrupted_message", "reason_counts"]

#: The summary's name for an ``invalid field`` dead letter refused by the time-jump guard
#: (``Pipeline._too_far_ahead`` words its detail; the flag name is in every one).
TOO_FAR_AHEAD = "too far ahead in time"


class DeadLetterTally:
    """Dead letters counted by reason as the replay hands its outputs over."""

    def __init__(self) -> None:
        self.by_reason: Counter[str] = Counter()

    def add(self, records: list[dict]) -> None:
        for record in records:
            reason = record.get("reason") or "unknown"
            if reason == "invalid field" and "--max-time-jump-seconds" in (record.get("detail") or ""):
                reason = TOO_FAR_AHEAD
            self.by_reason[reason] += 1

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())


def reason_counts(by_reason: Counter[str], *, internal: bool = False) -> str:
    """``malformed json 403, missing field 2``: most frequent first, ties by name (the same
    input, the same line); ``internal``: with the ``internal error`` letters (the summary
    counts those on their own).

    >>> reason_counts(Counter({"not an object": 2, "missing field": 2, "malformed json": 403}))
    'malformed json 403, missing field 2, not an object 2'
    """
    return ", ".join(f"{reason} {n:,}" for reason, n in sorted(by_reason.items(),
                                                                  key=lambda kv: (-kv[1], kv[0]))
                     if internal or reason != "internal error")


def check_replay_result(result: dict, tally: DeadLetterTally, *, events: str,
                        max_time_jump_seconds: int, dead_letters_kept: bool) -> None:
    """After the summary: the warnings (stderr), then the error for a file without one
    valid event (an :class:`InputError`: ``riskwatch: error: ...``, exit 2)."""
    where = "standard input" if events == "-" else events
    ahead = tally.by_reason.get(TOO_FAR_AHEAD, 0)
    if ahead:
        jump = max_time_jump_seconds
        _warn(f"{ahead:,} events were dead-lettered, not processed, as more than "
              f"--max-time-jump-seconds {jump} ({jump / 86400:g} days) ahead of the latest event "
              "time: if the input has a gap that long (files of days far apart), replay with a "
              "larger --max-time-jump-seconds (0: no limit)")
    if tally.total and not dead_letters_kept:
        _warn(f"{tally.total:,} dead letters were not saved: give --dead-letters-out FILE to keep "
              "them (the reason, line and masked excerpt of each)")
    lines = result["lines"] - result.get("blank_lines", 0)
    if lines == 0:
        # Not an error: an empty day or a filter that matched nothing is a normal input
        # to a script; nothing was lost, and the summary's zeros say the same.
        _warn(f"no events in {where}: it is empty" + (" but for blank lines" if result["lines"] else ""))
    elif result["events"] == 0:
        raise InputError(f"no valid events in {where} ({lines:,} lines dead-lettered: "
                         f"{reason_counts(tally.by_reason, internal=True)}); is it JSONL, "
                         "one event per line?")


def interrupted_message(stop: BaseException, *, events: str, watermark: str | None,
                        outputs: dict[str, str]) -> str:
    """What follows ``riskwatch: interrupted`` when Ctrl-C stops a replay: where (the
    lines, the event time reached) and which outputs (``{flag: path}``) are partial."""
    where = "standard input" if events == "-" else events
    done, read = getattr(stop, "done", 0), getattr(stop, "read", 0)
    if read > done:
        at = f"in lines {done + 1:,}-{read:,} of {where}"
    elif done:
        at = f"after line {done:,} of {where}"
    else:
        at = f"before any line of {where} was processed"
    if watermark:
        at += f" (event time {watermark})"
    listed = ", ".join(f"{flag} {path}" for flag, path in outputs.items())
    if not listed:
        return at
    if not done:
        return f"{at}; nothing was written to {listed}"
    return f"{at}; partial outputs, up to line {done:,}: {listed}"
