"""Ctrl-C during ``riskwatch simulate --broker``: how much the broker got, and what the
manifest (written before the first event) then claims.

It said only that the broker "got only part of the simulation", with no count, though
the manifest it had written describes incidents the broker never received.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

from riskwatch.broker import EmbeddedBroker
from tests.integration.conftest import ROOT
from tests.test_interrupts import interruptible


def test_ctrl_c_while_producing_says_how_many_events_the_broker_got(broker_binary, tmp_path):
    # Its own broker: the simulation goes to the default topic names, which the shared
    # one's tests may read.
    with EmbeddedBroker(data_dir=tmp_path / "tansu", binary=broker_binary) as broker:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RISKWATCH_")}
        env["PYTHONPATH"] = str(ROOT)
        proc = subprocess.Popen(
            [sys.executable, "-m", "riskwatch.cli", "simulate", "--broker", broker.url,
             "--days", "3", "--manifest", "m.json", "--speed", "2000", "--batch", "20"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=interruptible)
        # paced at 2,000 simulated seconds a second: 3 days take ~2 minutes; the first
        # status line comes after 2 s of producing
        while not (line := proc.stderr.readline().decode()).startswith("produce: "):
            assert line, proc.communicate(timeout=60)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    *status_lines, message = err.decode().splitlines()   # a slow machine may print more
    assert all(line.startswith("produce: ") for line in status_lines), status_lines
    match = re.fullmatch(
        r"riskwatch: interrupted while producing: the broker kafka://127\.0\.0\.1:\d+ got "
        r"([\d,]+) events \(about (\d+)% of the 3 days\); --manifest m\.json describes the "
        r"whole simulation: evaluate against it counts the incidents never sent as missed",
        message)
    assert match, message
    assert int(match[1].replace(",", "")) >= 1 and int(match[2]) < 50
    assert (tmp_path / "m.json").exists() and out == b""
