"""The attack catalogue (docs/attacks.md) cannot drift from the attack registry."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from labelleak.attacks import attack_names, create_attack

ROOT = Path(__file__).resolve().parent.parent
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
