"""``sealmail.heap.settle``: what a ``serve`` process does to the collector once it runs
(in a child interpreter, so the test process keeps its own collector settings)."""

from __future__ import annotations

import json
import subprocess
import sys

from sealmail.heap import YOUNG_THRESHOLD

_PROBE = """
import gc, json
import sealmail.app  # what serve has imported by then
before = (gc.get_freeze_count(), gc.get_threshold())
from sealmail import heap
heap.settle()
garbage = []
garbage.append(garbage)  # a cycle made after start-up is still collected
del garbage
print(json.dumps({"before": before, "frozen": gc.get_freeze_count(), "threshold": gc.get_threshold(),
                  "collected": gc.collect()}))
"""


def test_settle_freezes_start_up_state_and_spaces_young_passes() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    seen = json.loads(done.stdout)
    assert seen["before"][0] == 0
    assert seen["frozen"] > 10_000  # the imported modules' objects, out of the collector's walk
    assert seen["threshold"][0] == YOUNG_THRESHOLD > seen["before"][1][0]
    assert seen["threshold"][1:] == seen["before"][1][1:]
    assert seen["collected"] >= 1
