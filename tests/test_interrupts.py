"""Ctrl-C says where it stopped and what it left behind.

It said only ``riskwatch: interrupted``: no word of how far a replay had got, nor that
its output files (and a simulation's events file) hold only part of the run, nor that
``simulate`` had not written its manifest and calendar yet.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from tests.streamkit import steady_stream
from tests.test_cli import _REPO


def interruptible() -> None:
    """``preexec_fn``: SIGINT as a terminal's Ctrl-C delivers it. A command started in
    the background by a shell without job control (``make test &`` in a script, some CI
    runners) inherits SIGINT *ignored*, and Python keeps ignoring it: the child then
    ran on, and these tests failed for the way they were started."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(*args: str, cwd) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": _REPO}
    return subprocess.Popen([sys.executable, "-m", "riskwatch.cli", *args], cwd=cwd, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=interruptible)


def test_ctrl_c_during_a_replay_says_the_line_the_event_time_and_the_partial_outputs(tmp_path):
    lines = steady_stream(days=1.5, orders_per_day=20_000)[:30_000]
    # From a pipe we hold open: the replay hands over the first 20,000 lines' outputs
    # (a progress line says so), then waits for more (it reads in 1 MB batches: the rest
    # is less), and the signal comes while it waits.
    proc = _start("replay", "-", "--alerts-out", "a.jsonl", "--dead-letters-out", "dl.jsonl",
                  cwd=tmp_path)
    proc.stdin.write(b"\n".join(lines) + b"\n")
    proc.stdin.flush()
    progress = proc.stderr.readline().decode()
    assert progress.startswith("replay: 20,000 lines"), progress
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    [line] = err.decode().splitlines()
    assert line.startswith("riskwatch: interrupted after line 20,000 of standard input "
                           "(event time 2026-11-0"), line
    assert line.endswith("; partial outputs, up to line 20,000: --alerts-out a.jsonl, "
                         "--dead-letters-out dl.jsonl"), line
    assert out == b""   # no summary of a run that did not finish
    assert (tmp_path / "a.jsonl").exists() and (tmp_path / "dl.jsonl").exists()


def test_ctrl_c_during_simulate_says_the_events_file_is_partial_and_what_is_missing(tmp_path):
    # A week of the default market: ~60 s of writing; stopped after its first progress line.
    proc = _start("simulate", "--out", "e.jsonl", "--manifest", "m.json", "--calendar-out",
                  "c.json", cwd=tmp_path)
    progress = proc.stderr.readline().decode()
    assert progress.startswith("simulate: "), progress
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    *progress_lines, line = err.decode().splitlines()   # a slow machine may print more
    assert all(p.startswith("simulate: ") for p in progress_lines), progress_lines
    assert line.startswith("riskwatch: interrupted after about "), line
    assert line.endswith(" of the 7 days): --out e.jsonl is partial; --manifest and "
                         "--calendar-out were not written"), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.jsonl"]
