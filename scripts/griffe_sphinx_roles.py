"""Griffe extension for the docs build: Sphinx roles in docstrings (:class:`X`, :func:`f`) become inline code.

The docstrings are Google style, but a few name objects with reStructuredText roles, which Markdown would show
as a literal ``:class:`` followed by the name. Loaded by mkdocs.yml (mkdocstrings' python handler, ``extensions``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|attr|obj|exc|data):`(~?)([^`]+)`")


def _code(match: re.Match[str]) -> str:
    """``:class:`a.B``` -> ```a.B```; ``:class:`~a.B``` -> ```B``` (Sphinx's tilde shows the last part only)."""
    name = match[2].rsplit(".", 1)[-1] if match[1] else match[2]
    return f"`{name}`"


class SphinxRoles(griffe.Extension):
    """Rewrite ``:role:`name``` to ```name``` in every docstring as it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_code, obj.docstring.value)
