"""Precision and recall of the PHI detectors on the labelled corpus the tests ship.

``tests/data/dlp_corpus.jsonl``: the first line holds the tenant policy (MRN patterns,
keywords); each other line is ``{"id", "split", "text", "expected": [detector names]}``.  All
texts are synthetic.  Rows with ``split: "holdout"`` were written after tuning stopped and are
reported separately so the headline numbers can be compared with unseen text.

Scoring is per (text, detector): a detector that fires on a text whose label set lacks it is a
false positive; a labelled detector that does not fire is a false negative.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sealmail.dlp.detectors import BUILTIN_NAMES
from sealmail.dlp.rules import DlpPolicy, TextPart, scan

CORPUS = Path(__file__).resolve().parents[2] / "data" / "dlp_corpus.jsonl"


@dataclass
class Tally:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def load() -> tuple[DlpPolicy, list[dict[str, Any]]]:
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    policy = DlpPolicy(**json.loads(lines[0])["policy"])
    return policy, [json.loads(line) for line in lines[1:] if line.strip()]


def evaluate(policy: DlpPolicy, rows: list[dict[str, Any]]) -> tuple[dict[str, Tally], Tally, list[str]]:
    per = {name: Tally() for name in BUILTIN_NAMES}
    errors: list[str] = []
    for row in rows:
        got = scan([TextPart("text", row["text"])], policy).detectors
        expected = set(row["expected"])
        for name in got & expected:
            per[name].tp += 1
        for name in got - expected:
            per[name].fp += 1
            errors.append(f"{row['id']}: false positive {name}")
        for name in expected - got:
            per[name].fn += 1
            errors.append(f"{row['id']}: missed {name}")
    overall = Tally(*(sum(getattr(t, f) for t in per.values()) for f in ("tp", "fp", "fn")))
    return per, overall, errors


def table(per: dict[str, Tally], overall: Tally) -> str:
    lines = ["| detector | TP | FP | FN | precision | recall |", "|---|---:|---:|---:|---:|---:|"]
    for name, t in [*per.items(), ("**overall**", overall)]:
        lines.append(f"| {name} | {t.tp} | {t.fp} | {t.fn} | {t.precision:.3f} | {t.recall:.3f} |")
    return "\n".join(lines)


def test_corpus_is_large_balanced_and_uses_known_detectors() -> None:
    _, rows = load()
    assert len(rows) >= 120
    assert len({row["id"] for row in rows}) == len(rows)
    clean = [row for row in rows if not row["expected"]]
    assert len(clean) >= 50, "the corpus needs tricky non-PHI texts, not just PHI"
    for row in rows:
        assert set(row["expected"]) <= set(BUILTIN_NAMES), row["id"]
    for name in BUILTIN_NAMES:
        assert sum(name in row["expected"] for row in rows) >= 3, f"too few {name} examples"


def test_precision_and_recall_meet_the_bar() -> None:
    policy, rows = load()
    per, overall, errors = evaluate(policy, rows)
    holdout = [row for row in rows if row.get("split") == "holdout"]
    _, held, _ = evaluate(policy, holdout)
    report = [
        "",
        table(per, overall),
        f"holdout ({len(holdout)} texts): precision {held.precision:.3f}, recall {held.recall:.3f}",
        *errors,
    ]
    print("\n".join(report))  # noqa: T201 - the table is this test's report (see it with -s)
    assert overall.precision >= 0.95, errors
    assert overall.recall >= 0.95, errors


def test_no_clean_text_triggers_a_blocking_verdict_under_strict_policy() -> None:
    policy, rows = load()
    strict = DlpPolicy(
        mrn_patterns=list(policy.mrn_patterns),
        keywords=list(policy.keywords),
        default_action="block",  # type: ignore[arg-type]
    )
    false_alarms = [
        row["id"]
        for row in rows
        if not row["expected"] and scan([TextPart("text", row["text"])], strict).phi_found
    ]
    # At most 5% of clean texts may be flagged (precision bar applied per message).
    assert len(false_alarms) <= 0.05 * sum(1 for row in rows if not row["expected"]), false_alarms
