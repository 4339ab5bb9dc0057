"""report.html without a browser: the numbers on the page are those of the results, old folders rebuild, bad
folders give one-line errors, and the Markdown writers moved into report/ give the committed files' bytes."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from report_fixtures import make_audit_folder
from rich.console import Console
from typer.testing import CliRunner

from labelleak.cli import app
from labelleak.errors import InvalidInputError
from labelleak.report.claims import check_claims
from labelleak.report.html import render_report, write_report
from labelleak.report.markdown import matrix_markdown, sizes_pivot, summary_markdown
from labelleak.report.provenance import library_versions, provenance, sha256_file
from labelleak.report.table import print_audit_table

RUNS = Path(__file__).resolve().parents[2] / "docs" / "runs"
runner = CliRunner()


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def test_audit_verdict_names_the_strongest_label_only_attack_with_its_numbers(tmp_path):
    results = make_audit_folder(tmp_path)
    html = render_report(tmp_path)
    hsja = results["attacks"]["boundary-hsja"]  # the larger separation of the two label-only attacks
    block = html[html.index('id="verdict-label-only"') : html.index("</section>")]
    assert "<strong>boundary-hsja</strong>" in block
    lo, hi = hsja["tpr_at_fpr_ci"]["0.01"]  # 300 non-members: 1% FPR and its exact interval are resolved
    held_out = hsja["tpr_at_fpr_exact"]["0.01"]  # the number shown is the one its interval belongs to
    assert f'data-fpr="0.01">{_pct(held_out["tpr"])}<' in block and f"{_pct(lo)} to {_pct(hi)}" in block
    assert f"over all 300 non-members reads {_pct(hsja['tpr_at_fpr']['0.01'])}" in block
    assert f"flags {_pct(held_out['fpr'])} of {held_out['n_evaluation']} held-out non-members" in block
    # ... 0.1% FPR is not: no number, and the count it would need
    assert hsja["tpr_at_fpr"]["0.001"] is None and 'data-fpr="0.001">n/a<' in block
    assert "TPR at 0.1% FPR needs &gt;= 1000 non-members, has 300" in block
    assert "<td>n/a (1,000 non-members needed, 300 here)</td>" in block
    assert f"AUC {hsja['auc']:.3f}" in block
    score_block = html[html.index('id="verdict-scores"') :]
    assert "<strong>score-loss</strong>" in score_block[:600] and "stronger threat model" in score_block[:600]


def test_audit_table_has_one_row_per_attack_and_the_page_is_self_contained(tmp_path):
    results = make_audit_folder(tmp_path)
    html = render_report(tmp_path)
    for name, entry in results["attacks"].items():
        row = re.search(rf'<tr data-attack="{name}">(.*?)</tr>', html, re.S)
        assert row is not None and f"<td>{entry['auc']:.3f}</td>" in row.group(1)
    assert "<script" not in html and not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    assert "@import" not in html and not re.search(r"url\((?!#)", html)  # only references inside the page
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    svgs = re.findall(r"<svg[^>]*>", html)
    assert len(svgs) == 4  # ROC, histograms, AUC against queries, data-free sweep
    assert all('role="img"' in s and 'aria-label="' in s for s in svgs)
    assert html.count("<title>") == 1 + len(svgs)  # the page's and one per figure


def test_the_terminal_table_prints_n_a_where_the_non_members_cannot_resolve_the_fpr(tmp_path):
    results = make_audit_folder(tmp_path)
    console = Console(record=True, width=200)
    print_audit_table(results, console)
    text = console.export_text()
    row = next(line for line in text.splitlines() if "boundary-hsja" in line)
    tpr = results["attacks"]["boundary-hsja"]["tpr_at_fpr"]
    assert row.split("│")[5].strip() == "n/a" and row.split("│")[6].strip() == f"{tpr['0.01']:.3f}"
    assert "n/a: TPR at 0.1% FPR needs >= 1000 non-members, has 300" in text


def test_query_spend_and_provenance_are_stated(tmp_path):
    make_audit_folder(tmp_path)
    html = render_report(tmp_path)
    # gap: 600 candidates x 1 + 100 setup; boundary-hsja: 600 x 250 + 4000 noise queries; score-loss not counted
    assert re.search(r"<th[^>]*>total</th><th[^>]*>154700</th>", html)
    assert f"numpy {np.__version__}" in html and "cpu_count" in html and "12.5 s" in html


def test_older_results_state_what_is_missing(tmp_path):
    make_audit_folder(tmp_path, with_scores=False, provenance=False)
    html = render_report(tmp_path)
    assert 'id="missing"' in html and "scores.csv is not in the folder" in html and "predates provenance" in html
    assert "predates exact TPR intervals" not in html
    assert "<svg" in html and 'id="fig-roc"' not in html  # the figures that need no scores.csv are still drawn


@pytest.mark.parametrize("name", sorted(p.name for p in RUNS.iterdir() if p.is_dir()))
def test_labelleak_report_rebuilds_every_committed_run(tmp_path, name):
    folder = tmp_path / name
    shutil.copytree(RUNS / name, folder)
    result = runner.invoke(app, ["report", str(folder)])
    assert result.exit_code == 0, result.output
    html = (folder / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "<script" not in html


def test_an_older_audit_hides_unresolvable_tprs_and_its_bootstrap_intervals(tmp_path):
    """results.json written before exact intervals: a TPR at 0.1% FPR on 300 non-members and bootstrap bounds."""
    results = make_audit_folder(tmp_path)
    for entry in results["attacks"].values():
        entry["tpr_at_fpr"] = {"0.001": 0.05, "0.01": 0.2, "0.1": 0.5}
        entry["tpr_at_fpr_ci"] = {k: [0.0123, 0.987] for k in entry["tpr_at_fpr"]}
        del entry["tpr_at_fpr_exact"], entry["tpr_at_fpr_na"]
    (tmp_path / "results.json").write_text(json.dumps(results))
    html = render_report(tmp_path)
    block = html[html.index('id="verdict-label-only"') : html.index("</section>")]
    assert 'data-fpr="0.001">n/a<' in block and 'data-fpr="0.01">20.0%<' in block and "98.7%" not in block
    assert "predates exact TPR intervals" in html
    row = re.search(r'<tr data-attack="gap">(.*?)</tr>', html, re.S)
    assert row is not None and "<td>n/a</td><td>0.200</td><td>0.500</td>" in row.group(1)


def test_reproduce_report_checks_the_papers_claims():
    html = render_report(RUNS / "reproduce-sizes-cpu")
    assert "Leakage falls as the training set grows" in html and "holds (10 of 10)" in html
    assert html.count('<img class="fig" src="data:image/png;base64,') == 2


def test_claim_verdicts_follow_their_rules():
    """A claim's items are judged on their intervals, never on the point estimates alone."""
    rows = [
        {"train_size": s, "attack": a, "auc": auc, "auc_low": lo, "auc_high": hi, "threat_model": t}
        for s, a, auc, lo, hi, t in [
            (100, "gap", 0.80, 0.78, 0.82, "label-only"),
            (500, "gap", 0.70, 0.68, 0.72, "label-only"),  # falls: the intervals are apart
            (100, "transfer", 0.75, 0.70, 0.80, "label-only"),
            (500, "transfer", 0.73, 0.68, 0.78, "label-only"),  # falls on the points only: undecided
            (100, "score-loss", 0.90, 0.89, 0.91, "scores"),
            (500, "score-loss", 0.95, 0.94, 0.96, "scores"),  # rises
        ]
    ]
    falls, close = check_claims("sizes", {"sizes": rows})
    assert falls["verdict"] == "inconclusive (1 hold, 1 do not, 1 undecided, of 3)"
    assert "gap 0.800 [0.780, 0.820] -> 0.700 [0.680, 0.720]" in falls["measured"]
    assert close["verdict"] == "does not hold (2 of 2)"  # 0.89 - 0.82 > 0.05 at 100, 0.94 - 0.72 at 500
    apart = [r for r in rows if r["attack"] != "transfer"]
    apart[-1] = {**apart[-1], "auc": 0.6, "auc_low": 0.58, "auc_high": 0.62}  # score-loss falls too
    assert check_claims("sizes", {"sizes": apart})[0]["verdict"] == "holds (2 of 2)"
    # the best label-only attack is not picked by its point AUC: a wide interval at the top point (0.810
    # [0.70, 0.90]) does not hide a tight one just below it (0.805 [0.80, 0.81]), which no point rule would pick
    wide = {"train_size": 100, "attack": "a", "auc": 0.81, "auc_low": 0.70, "auc_high": 0.90}
    wide["threat_model"] = "label-only"
    tight = {**wide, "attack": "b", "auc": 0.805, "auc_low": 0.80, "auc_high": 0.81}
    score = {**wide, "attack": "s", "auc": 0.84, "auc_low": 0.83, "auc_high": 0.85, "threat_model": "scores"}
    close_one = check_claims("sizes", {"sizes": [wide, tight, score]})[1]
    assert close_one["verdict"] == "holds (1 of 1)"
    assert "(best: [0.800, 0.900] vs [0.830, 0.850])" in close_one["measured"]
    points_only = [{k: v for k, v in r.items() if k not in ("auc_low", "auc_high")} for r in apart]
    assert check_claims("sizes", {"sizes": points_only})[0]["verdict"].startswith("inconclusive (0 hold")
    near = [
        {"quantity": "d", "member_median": 1.0, "nonmember_median": 0.1, "auc": 0.8, "auc_low": 0.7, "auc_high": 0.9},
        {
            "quantity": "r",
            "member_median": 0.1,
            "nonmember_median": 0.1,
            "auc": 0.53,
            "auc_low": 0.48,
            "auc_high": 0.57,
        },
    ]
    (farther,) = check_claims("distances", {"distances": near})
    assert farther["verdict"] == "inconclusive (1 hold, 0 do not, 1 undecided, of 2)"
    assert check_claims("unknown-kind", {}) == []
    whole = [{"attack": "hsja", "queries": q, "auc": 0.8} for q in (100, 1999)]  # never past 2,000 queries
    (enough,) = check_claims("queries", {"queries": whole})
    assert enough["verdict"].startswith("inconclusive") and "0.800 at 1999 vs 0.800 at 1999" in enough["measured"]


def test_the_lowfpr_goal_is_a_project_goal_and_inconclusive_on_its_committed_interval():
    """docs/runs/reproduce-lowfpr-cpu: the 1% goal's ratio 0.571 on 200 non-members has interval [0.185, 1.964]."""
    html = render_report(RUNS / "reproduce-lowfpr-cpu")
    assert 'id="goals"' in html and "The paper&#39;s claims" not in html and 'id="claims"' not in html
    goals = html[html.index('id="goals-table"') :]
    goals = goals[: goals.index("</table>")]
    assert "holds" not in re.sub(r'class="[^"]*"', "", goals) and goals.count(">inconclusive</td>") == 2
    assert "[0.19, 1.96]" in goals and "TPR at 0.1% FPR needs &gt;= 1000 non-members, has 200" in goals
    assert "0.045" not in goals  # boundary-hsja's TPR at 0.1% FPR on 200 non-members is not printed
    table = html[html.index("<h3>goal</h3>") :]
    table = table[: table.index("</table>")]
    assert "<th>verdict</th>" in table and "<th>met</th>" not in table and "True" not in table
    assert table.count("<td>inconclusive</td>") == 2
    # the committed table's TPR at 0.1% FPR on 200 non-members (0.045) is n/a on the page; at 1% it stays
    row = re.search(r"<tr><td>boundary-hsja</td>(.*?)</tr>", html, re.S)
    assert row is not None and row.group(1).count("<td>n/a</td>") == 3 and "<td>0.045</td>" in row.group(1)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "nope", "report: no folder"),
        (lambda p: p, "holds no results.json, matrix.json or summary.json"),
        (lambda p: (p / "results.json").write_text("{not json") and p, "report: cannot read"),
        (lambda p: (p / "summary.json").write_text("{not json") and p, "report: cannot read"),  # before its tables
        (lambda p: (p / "results.json").write_text('{"config": {}}') and p, "has no attacks"),
    ],
)
def test_bad_folders_give_one_line_error_and_exit_2(tmp_path, make, message):
    folder = make(tmp_path)
    with pytest.raises(InvalidInputError, match=message):
        write_report(folder)
    result = runner.invoke(app, ["report", str(folder)])
    assert result.exit_code == 2 and result.output.startswith("error: ") and message in result.output
    assert len(result.output.strip().splitlines()) <= 2  # one line, wrapped at most once by the terminal width


def test_markdown_writers_give_the_committed_files():
    """Golden files written before the writers moved into report/."""
    matrix = json.loads((RUNS / "defend-digits" / "matrix.json").read_text())
    written = (RUNS / "defend-digits" / "matrix.md").read_text()  # the table, then the evaluation and recommendation
    assert written.startswith(matrix_markdown(matrix["rows"], matrix["config"]["attacks"]).rstrip("\n") + "\n")
    summary = json.loads((RUNS / "reproduce-sizes-cpu" / "summary.json").read_text())
    figures = [Path(f) for f in summary["figures"]]
    expected = (RUNS / "reproduce-sizes-cpu" / "summary.md").read_text()
    assert summary_markdown(summary, summary["tables"], figures) == expected


def test_the_sizes_pivot_prints_n_a_for_a_tpr_the_candidates_cannot_resolve():
    row = {"train_size": 100, "attack": "boundary-hsja", "train_accuracy": 1.0, "test_accuracy": 0.5,
           "auc": 0.75, "auc_low": 0.62, "auc_high": 0.86, "tpr@1%": None}  # fmt: skip
    assert "| boundary-hsja | 0.750 [0.620, 0.860] / n/a |" in sizes_pivot([row])


def test_provenance_hashes_the_files_it_read(tmp_path):
    data = tmp_path / "data.npz"
    data.write_bytes(b"some bytes")
    record = provenance({"config": {"data": str(data), "members": str(tmp_path / "absent.npz")}, "target": {}})
    assert record["sha256"] == {"data": {"path": str(data), "sha256": hashlib.sha256(b"some bytes").hexdigest()}}
    assert sha256_file(data) == hashlib.sha256(b"some bytes").hexdigest()
    assert library_versions()["numpy"] == np.__version__ and record["machine"]["cpu_count"] >= 1


def test_the_distances_table_gives_each_auc_its_interval_in_content_key_order(tmp_path):
    from labelleak.report.summaries import RunRecord, summarize_distances

    rng = np.random.default_rng(0)
    member = np.r_[np.ones(100, bool), np.zeros(100, bool)]
    d = np.where(member, 1.0, 0.5) + rng.normal(0, 0.5, 200)
    keys = rng.integers(0, 2**62, 200)

    def row(order):
        arrays = {"is_member": member[order], "boundary-hsja/distance_l2": d[order], "content_key": keys[order]}
        record = RunRecord({}, "all", {"attacks": {"boundary-hsja": {}}, "config": {"n_boot": 200}}, arrays)
        return summarize_distances([record], tmp_path)[0]["distances"][0]

    first, shuffled = row(np.arange(200)), row(rng.permutation(200))
    assert first["auc_low"] < first["auc"] < first["auc_high"] and first["auc_low"] > 0.5
    assert (first["auc_low"], first["auc_high"]) == (shuffled["auc_low"], shuffled["auc_high"])


def _old_queries_summary(folder: Path) -> None:
    """A summary written before the printing rule: its rows carry no ``n_nonmembers`` and a TPR at 0.1% FPR on
    200 non-members; only its run's config says how many non-members there were."""
    summary = {
        "experiment": "queries",
        "kind": "queries",
        "scale": "cpu",
        "description": "d",
        "claim": "",
        "dataset": "digits",
        "device": "CPU",
        "seconds": 1.0,
        "runs": [{"point": {}, "group": "all", "folder": "base/all", "config": {"train_size": 1000, "eval_size": 200}}],
        "tables": {
            "queries": [{"attack": "boundary-hsja", "queries": 100, "auc": 0.8, "tpr@0.1%": 0.03, "tpr@1%": 0.06}]
        },  # fmt: skip
        "figures": [],
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "summary.md").write_text("| boundary-hsja | 100 | 0.800 | 0.030 | 0.060 |\n")


def test_report_rebuilds_an_old_summarys_tables_without_the_unresolved_tpr(tmp_path):
    from labelleak.report.outputs import rewrite_summary_tables

    _old_queries_summary(tmp_path)
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    md = (tmp_path / "summary.md").read_text()
    assert "| boundary-hsja | 100 | 0.800 | n/a | 0.060 |" in md  # 0.1% needs 1,000 non-members; 1% needs 100
    assert (tmp_path / "queries.csv").read_text().splitlines()[1] == "boundary-hsja,100,0.8,,0.06"
    assert json.loads((tmp_path / "summary.json").read_text())["tables"]["queries"][0]["tpr@0.1%"] == 0.03  # raw
    assert not rewrite_summary_tables(tmp_path / "empty")  # no summary.json: nothing to rewrite


def test_masked_tables_reads_an_old_row_with_its_runs_count_and_leaves_mixed_runs_alone():
    from labelleak.report.lowfpr import masked_tables

    row = {"attack": "a", "tpr@0.1%": 0.03, "tpr@1%": 0.06}
    runs = [{"config": {"train_size": 1000, "eval_size": 200}}]
    assert masked_tables({"runs": runs, "tables": {"t": [row]}})["t"] == [{**row, "tpr@0.1%": None}]
    wide = [{"config": {"train_size": 2000, "eval_size": 2000}}]
    assert masked_tables({"runs": wide, "tables": {"t": [row]}})["t"] == [row]
    few = [{"config": {"train_size": 2000, "test_size": 150, "eval_size": 2000}}]  # 150 non-members, not 2,000
    assert masked_tables({"runs": few, "tables": {"t": [row]}})["t"] == [{**row, "tpr@0.1%": None}]
    assert masked_tables({"runs": runs + wide, "tables": {"t": [row]}})["t"] == [row]  # a row's run is unknown
    counted = {**row, "n_nonmembers": 2000}  # a row's own count wins over its runs'
    assert masked_tables({"runs": runs, "tables": {"t": [counted]}})["t"] == [counted]
    unknown = {**row, "n_nonmembers": None}  # an older results.json had no count: its runs' is used
    assert masked_tables({"runs": runs, "tables": {"t": [unknown]}})["t"] == [{**unknown, "tpr@0.1%": None}]
    matrix = {"defense": "none", "gap.tpr@0.1%": 0.03, "gap.tpr@0.1%_roc": 0.03, "gap.tpr@1%_low": 0.01}
    assert masked_tables({"runs": runs, "tables": {"m": [matrix]}})["m"] == [
        {**matrix, "gap.tpr@0.1%": None, "gap.tpr@0.1%_roc": None}
    ]


def test_an_old_lowfpr_summary_keeps_its_bootstrap_note(tmp_path):
    old = json.loads((RUNS / "reproduce-lowfpr-offline1000-cpu" / "summary.json").read_text())
    new = json.loads((RUNS / "reproduce-lowfpr-guided-cpu" / "summary.json").read_text())
    assert "95% bootstrap intervals (this run predates" in summary_markdown(old, old["tables"], [])
    assert "exact (Clopper-Pearson" in summary_markdown(new, new["tables"], [])
