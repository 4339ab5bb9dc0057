"""The docs cannot drift from the code: the attack catalogue (docs/attacks.md) from the registry, the options the
guide pages name from the command line, and the REST spec and MLServer files they show from those the tests use."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

from labelleak.attacks import attack_names, create_attack

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "attacks.md"
ROW = re.compile(r"^\| `(?P<name>[^`]+)` \| (?P<threat>[^|]+?) \|")


def _catalogue_rows() -> list[tuple[str, str]]:
    """(name, threat model) of each row of the page's 'All attacks' table."""
    lines = PAGE.read_text(encoding="utf-8").splitlines()
    start = lines.index("## All attacks")
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("## "):
            break
        match = ROW.match(line)
        if match:
            rows.append((match["name"], match["threat"]))
    return rows


def _script():
    spec = importlib.util.spec_from_file_location("attack_catalogue", ROOT / "scripts" / "attack_catalogue.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_catalogue_lists_every_registered_attack_once():
    names = [name for name, _ in _catalogue_rows()]
    assert sorted(names) == attack_names()  # no missing, stale or repeated names


def test_catalogue_threat_models_match_the_attacks():
    rows = _catalogue_rows()
    assert rows
    for name, threat in rows:
        assert threat == create_attack(name).threat_model, name


def test_catalogue_page_is_what_the_script_writes():
    assert PAGE.read_text(encoding="utf-8") == _script().render(), "stale: run scripts/attack_catalogue.py"


def test_catalogue_script_stops_on_an_attack_without_an_entry(monkeypatch):
    script = _script()
    monkeypatch.setattr(script, "FAMILIES", [f for f in script.FAMILIES if f.cls != "GapAttack"])
    with pytest.raises(SystemExit, match=r"no catalogue entry for attack class\(es\) GapAttack: add one"):
        script.render()


def test_catalogue_script_check_flags_a_stale_page(tmp_path, monkeypatch, capsys):
    script = _script()
    page = tmp_path / "attacks.md"
    page.write_text("# Attack catalogue\n", encoding="utf-8")
    monkeypatch.setattr(script, "PAGE", page)
    assert script.main(["--check"]) == 1
    assert "is stale: run scripts/attack_catalogue.py" in capsys.readouterr().err
    assert script.main([]) == 0
    assert script.main(["--check"]) == 0


def test_sphinx_roles_in_docstrings_become_inline_code():
    griffe = pytest.importorskip("griffe", reason="griffe comes with the docs packages (mkdocstrings[python])")
    spec = importlib.util.spec_from_file_location("griffe_sphinx_roles", ROOT / "scripts" / "griffe_sphinx_roles.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    obj = griffe.Class("X", docstring=griffe.Docstring("needs a :class:`TorchOracle`; see :func:`~labelleak.a.f`."))
    module.SphinxRoles().on_instance(node=None, obj=obj, agent=None)
    assert obj.docstring.value == "needs a `TorchOracle`; see `f`."


# --- the guide pages name only options that exist, and show the files the tests use ---------------------------------

GUIDE = [ROOT / "README.md", ROOT / "docs" / "index.md", *sorted((ROOT / "docs" / "guide").glob("*.md"))]
FENCE = re.compile(r"```(\w*)\n(.*?)```", flags=re.DOTALL)
SPAN_OPTION = re.compile(r"`(--[a-z][a-z0-9-]*)")
NOT_LABELLEAK = {"--durations"}  # pytest's, named beside the suite


def _cli_options() -> dict[str, set[str]]:
    """Each command path ("" for the top level, "audit", "split export", ...) and its long options."""
    import typer

    from labelleak.cli import app

    found: dict[str, set[str]] = {}

    def walk(command, path: str) -> None:
        found[path] = {o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("--")}
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_command(app), "")
    return found


def _command_lines(page: Path) -> list[str]:
    """Every shell line of the page's bash blocks, backslash continuations joined, comments cut."""
    lines = []
    for lang, body in FENCE.findall(page.read_text(encoding="utf-8")):
        if lang in ("bash", "text"):
            joined = re.sub(r"\\\n\s*", " ", body)
            lines += [re.split(r"\s#\s|^#", line)[0] for line in joined.splitlines()]
    return lines


def _labelleak_calls(line: str, commands: dict[str, set[str]]) -> list[tuple[str, list[str]]]:
    """(command path, its --options) of each labelleak call on a shell line."""
    calls = []
    line = re.sub(r'"[^"]*"', "Q", re.sub(r"'[^']*'", "Q", line))  # quoted words, $(...) in them, are values
    for segment in re.split(r"&&|\|\||;|\|", line):
        tokens = segment.split()
        starts = [i for i, t in enumerate(tokens) if t == "labelleak" or t.endswith("/labelleak")]
        if not starts:
            continue
        rest = tokens[starts[0] + 1 :]
        names = [t for t in rest if not t.startswith("-")]
        path = names[0] if names and names[0] in commands else ""
        if path and len(names) > 1 and f"{path} {names[1]}" in commands:
            path = f"{path} {names[1]}"
        calls.append((path, [t.split("=")[0] for t in rest if t.startswith("--")]))
    return calls


@pytest.mark.parametrize("page", GUIDE, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_labelleak_command_line_on_the_page_uses_real_options(page):
    commands = _cli_options()
    for line in _command_lines(page):
        for path, options in _labelleak_calls(line, commands):
            known = commands[path] | commands[""] | {"--help"}
            assert set(options) <= known, f"{page.name}: `labelleak {path}` has no {sorted(set(options) - known)}"


@pytest.mark.parametrize("page", GUIDE, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_option_the_page_names_exists(page):
    every = set().union(*_cli_options().values()) | NOT_LABELLEAK
    prose = FENCE.sub("", page.read_text(encoding="utf-8"))
    named = set(SPAN_OPTION.findall(prose)) | set(re.findall(r"/(--[a-z][a-z0-9-]*)`", prose))  # `--mean/--std`
    assert named <= every, f"{page.name} names options no command has: {sorted(named - every)}"


def test_the_rest_spec_shown_is_the_example_file():
    page = (ROOT / "docs" / "guide" / "remote.md").read_text(encoding="utf-8")
    blocks = [body for lang, body in FENCE.findall(page) if lang == "yaml"]
    assert (ROOT / "examples" / "rest-spec.yaml").read_text(encoding="utf-8") in blocks


def _mlserver_test_dicts() -> tuple[dict, set[str]]:
    """What tests/serve/test_v2_mlserver.py writes: model-settings.json (evaluated) and the keys of settings.json."""
    source = next(ROOT.glob("tests/**/test_v2_mlserver.py")).read_text(encoding="utf-8")
    tree = ast.parse(source)
    assigns = [node for node in tree.body if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)]
    names = {node.targets[0].id: node.value.value for node in assigns if isinstance(node.targets[0], ast.Name)}
    dicts = [node for node in ast.walk(tree) if isinstance(node, ast.Dict)]
    keys = [{k.value for k in d.keys if isinstance(k, ast.Constant)} for d in dicts]
    model = next(d for d, k in zip(dicts, keys) if "implementation" in k)
    server = next(k for k in keys if "http_port" in k)
    return eval(compile(ast.Expression(model), "test_v2_mlserver", "eval"), dict(names)), server


def test_the_mlserver_files_shown_are_the_ones_tested():
    page = (ROOT / "docs" / "guide" / "remote.md").read_text(encoding="utf-8")
    shown = [json.loads(body) for lang, body in FENCE.findall(page) if lang == "json"]
    model = next(d for d in shown if "implementation" in d)
    server = next(d for d in shown if "http_port" in d)
    tested_model, tested_server_keys = _mlserver_test_dicts()
    assert model == tested_model
    assert set(server) == tested_server_keys and server["host"] == "127.0.0.1"
    audit = next(line for line in _command_lines(ROOT / "docs" / "guide" / "remote.md") if "--protocol v2" in line)
    assert f"--model-name {model['name']}" in audit
    assert f"--target http://127.0.0.1:{server['http_port']}" in audit
    assert f'folder / "{Path(model["parameters"]["uri"]).name}"' in page  # the snippet writes the file it names


CITED_RUN = re.compile(r"docs/runs/[A-Za-z0-9_.=+/-]*[A-Za-z0-9_=+/-]")


def _tracked_files() -> set[str]:
    import subprocess

    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return set(out.splitlines())


def test_every_run_folder_and_file_the_docs_cite_is_committed():
    """A fresh clone has what the pages point at: .gitignore once kept each defense's results.json out."""
    tracked = _tracked_files()
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    missing = set()
    for page in pages:
        for path in CITED_RUN.findall(page.read_text(encoding="utf-8")):
            if path.endswith("-") or "<" in path:
                continue  # a prefix or a placeholder, e.g. docs/runs/reproduce-<experiment>
            folder = path.rstrip("/") + "/"
            if path not in tracked and not any(f.startswith(folder) for f in tracked):
                missing.add(f"{page.relative_to(ROOT)}: {path}")
    assert not missing, sorted(missing)
