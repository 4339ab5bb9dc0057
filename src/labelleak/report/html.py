"""``report.html``: one self-contained page per output folder (audit, defend or reproduce), from Jinja2 templates.

Styles and figures are inline (SVG, or the run's PNGs as data URIs), there is no script and no link to any
server, so the page can be mailed, archived and printed. Folders written before this report existed are read
as far as their files allow, and the page says what is missing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from labelleak._extras import missing_extra
from labelleak._version import __version__
from labelleak.errors import InvalidInputError
from labelleak.report import figures
from labelleak.report.audit_view import audit_context
from labelleak.report.claims import check_claims, check_goals, is_project_goal, judged_goal_row
from labelleak.report.files import read_json_object
from labelleak.report.lowfpr import masked_tables
from labelleak.report.markdown import fmt_cell, fmt_number, missing_mark
from labelleak.report.repeats import repeats_context

REPORT = "report.html"


def find_results(folder: Path) -> tuple[str, Path]:
    """Which kind of run ``folder`` holds and the file to read: a reproduction's ``summary.json``, a defense
    sweep's ``matrix.json``, the seeds of ``audit --repeats`` pooled in ``repeats.json``, an audit's
    ``results.json`` (or another ``results*.json`` of an audit)."""
    if not folder.is_dir():
        raise InvalidInputError(f"report: no folder {folder}")
    runs = (
        ("reproduce", "summary.json"),
        ("defend", "matrix.json"),
        ("repeats", "repeats.json"),
        ("audit", "results.json"),
    )
    for kind, name in runs:
        if (folder / name).is_file():
            return kind, folder / name
    for path in sorted(folder.glob("results*.json")):
        if "attacks" in read_json_object(path):
            return "audit", path
    raise InvalidInputError(f"report: {folder} holds no results.json, matrix.json or summary.json")


def _subreport(folder: Path, sub: str | None) -> str | None:
    """Relative link to the report of a run inside ``folder``, when that run's files are there."""
    if not sub:
        return None
    path = folder / sub
    return f"{sub}/{REPORT}" if (path / "results.json").is_file() else None


def _defense_folders(folder: Path) -> dict[str, str]:
    """Each defense's audit folder inside a defense sweep's folder, found by the defense its results name."""
    found = {}
    for path in sorted(folder.glob("*/results.json")):
        try:
            defense = json.loads(path.read_text()).get("config", {}).get("defense")
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(defense, str):
            found[defense] = f"{path.parent.name}/{REPORT}"
    return found


def _png(folder: Path, name: str, alt: str, missing: list[str]) -> str | None:
    path = folder / name
    if path.is_file():
        return figures.png_img(path, alt)
    missing.append(f"{name} is not in the folder")
    return None


def defend_context(matrix: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The defense x attack matrix, the privacy-utility plot and links to each defense's audit report."""
    rows = matrix.get("rows", [])
    attacks = list(matrix.get("config", {}).get("attacks") or [])
    attacks = attacks or list(dict.fromkeys(k[: -len(".auc")] for r in rows for k in r if k.endswith(".auc")))
    missing: list[str] = []
    links = {r["defense"]: _defense_folders(folder).get(r["defense"]) for r in rows}
    if rows and not any(links.values()):
        missing.append("the per-defense audit folders are not here: no links to their reports")
    return {
        "kind": "defend",
        "config": matrix.get("config", {}),
        "attacks": attacks,
        "threats": {a: next((r.get(f"{a}.threat") for r in rows if r.get(f"{a}.threat")), "?") for a in attacks},
        "rows": rows,
        "recommendation": matrix.get("recommendation"),
        "links": links,
        "plot": figures.privacy_utility(rows, attacks) if rows else None,
        "missing": missing,
    }


def reproduce_context(summary: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The experiment's checks (the paper's claims, or this project's goals, apart), its tables and figures, and
    links to each audit's report."""
    missing: list[str] = []
    figs = [(name, _png(folder, name, f"{summary.get('experiment', '?')}: {Path(name).stem}", missing))
            for name in summary.get("figures", [])]  # fmt: skip
    runs = summary.get("runs", [])
    links = {r["folder"]: _subreport(folder / "runs", r["folder"]) for r in runs}
    links = {k: f"runs/{v}" if v else None for k, v in links.items()}
    if runs and not any(links.values()):
        missing.append("the audits' folders (runs/) are not here: no links to their reports")
    tables = summary.get("tables", {})
    shown = masked_tables(summary)  # older summaries printed TPRs their candidates cannot resolve
    if is_project_goal(summary.get("kind", "")) and "goal" in shown:
        shown["goal"] = [judged_goal_row(r) for r in shown["goal"]]  # a verdict, never a met flag
    return {
        "kind": "reproduce",
        "summary": summary,
        "claims": check_claims(summary.get("kind", ""), tables),
        "goals": check_goals(summary.get("kind", ""), tables),
        "project_goal": is_project_goal(summary.get("kind", "")),
        "tables": {name: (rows, list(dict.fromkeys(k for r in rows for k in r))) for name, rows in shown.items()},
        "figures": figs,
        "links": links,
        "missing": missing,
    }


def _environment() -> Any:
    try:
        import jinja2
    except ImportError:
        raise missing_extra("report", "report.html") from None
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("labelleak.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update({"num": fmt_number, "cell": fmt_cell})
    env.globals["missing_mark"] = missing_mark
    return env


def render_report(folder: str | Path) -> str:
    """The HTML of ``folder``'s report."""
    folder = Path(folder)
    kind, path = find_results(folder)
    data = read_json_object(path)
    if kind == "audit":
        if not isinstance(data.get("attacks"), dict):
            raise InvalidInputError(f"report: {path} has no attacks")
        context = audit_context(data, folder, source=path.name)
    elif kind == "defend":
        context = defend_context(data, folder)
    elif kind == "repeats":
        context = repeats_context(data, folder)
    else:
        context = reproduce_context(data, folder)
    context.update(
        folder=folder.name or str(folder),
        made_by=__version__,
        made_at=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )
    return _environment().get_template(f"{kind}.html.j2").render(**context)


def write_report(folder: str | Path) -> Path:
    """Write (or rebuild) ``folder/report.html`` atomically and return its path."""
    folder = Path(folder)
    text = render_report(folder)
    path = folder / REPORT
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
