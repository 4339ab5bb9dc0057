"""The exposed records: p-values against the non-members are valid, records.csv names the flagged members, and
results.json counts them only at FPRs the non-members resolve (issue 31, item 4)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from labelleak.errors import InvalidInputError
from labelleak.exposure import exposure_summary, p_values, resolvable_fprs
from labelleak.report.records import record_rows, write_records


def test_p_values_by_hand():
    is_member = np.array([1, 1, 0, 0, 0], bool)
    score = np.array([10.0, 1.5, 1.0, 2.0, 3.0])
    # member 10: no non-member >= 10 -> 1/4; member 1.5: 2 of 3 -> 3/4; non-members leave themselves out
    np.testing.assert_allclose(p_values(is_member, score), [1 / 4, 3 / 4, 3 / 3, 2 / 3, 1 / 3])
    with pytest.raises(InvalidInputError, match="at least one non-member"):
        p_values(np.ones(3, bool), np.zeros(3))


def test_flagging_non_members_at_p_below_x_happens_at_most_x_of_the_time():
    rng = np.random.default_rng(0)
    rates = []
    for _ in range(200):  # no member differs from a non-member: every flag is a false positive
        is_member = np.arange(2000) < 1000
        p = p_values(is_member, rng.normal(size=2000))
        rates.append((p[is_member] <= 0.01).mean())
    assert np.mean(rates) <= 0.01 + 0.001


def test_only_fprs_the_non_members_resolve_are_used():
    assert resolvable_fprs(99) == (0.01, 0.1) and resolvable_fprs(999) == (0.001, 0.01, 0.1)
    summary = exposure_summary(np.arange(300) < 200, {"a": np.ones(300)})
    assert summary["fprs"] == ["0.01", "0.1"] and summary["unresolved_fprs"] == ["0.001"]


def test_records_name_the_planted_exposed_members_first(tmp_path):
    rng = np.random.default_rng(1)
    is_member = np.arange(400) < 200
    leak = rng.normal(size=400)
    leak[:5] = 50.0  # five members far above every non-member
    scores = {"boundary-hsja": leak, "gap": rng.integers(0, 2, 400).astype(float)}
    rows, summary = record_rows(np.arange(400) + 1000, is_member, scores)
    assert [r["sample_index"] for r in rows[:5]] == [1000, 1001, 1002, 1003, 1004]
    assert rows[0]["boundary-hsja:p_value"] == pytest.approx(1 / 201) and "boundary-hsja@0.01" in rows[0]["flagged"]
    assert summary["members_flagged"]["boundary-hsja"]["0.01"] >= 5 and summary["any_over_attacks"] == 2
    write_records(tmp_path, rows)
    with (tmp_path / "records.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 400 and table[0]["sample_index"] == "1000" and table[0]["is_member"] == "True"
    lines = (tmp_path / "records.jsonl").read_text().splitlines()
    assert len(lines) == 400 and json.loads(lines[0])["sample_index"] == 1000


def test_an_audit_writes_its_records(tmp_path):
    from labelleak.pipeline import make_config, run_audit

    cfg = make_config(attacks=["gap"], train_size=60, eval_size=60, shadow_size=60, epochs=2, n_boot=50,
                      out=str(tmp_path / "out"), cache_dir=str(tmp_path / "c"), progress=False)  # fmt: skip
    results = run_audit(cfg)
    assert results["exposed"]["n_members"] == 60 and results["exposed"]["fprs"] == ["0.1"]
    assert len((tmp_path / "out" / "records.jsonl").read_text().splitlines()) == 120
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["exposed"]["members_flagged"]["gap"] == results["exposed"]["members_flagged"]["gap"]
    page = (tmp_path / "out" / "report.html").read_text()
    assert 'id="exposed-table"' in page and 'id="most-exposed-table"' in page
    assert "Not measurable with 60 non-members: FPR 0.001, 0.01" in page
