"""Which types a ``.skops`` file may load: a narrow list, not every name under ``sklearn.``, ``numpy.``, ``scipy.``.

skops rebuilds objects without calling their ``__init__`` but it does hand back any *function* a file names, and
an estimator calls stored functions at predict time (``FunctionTransformer(func=numpy.save)`` writes files,
``numpy.testing`` has one that runs ``exec``). So beyond what skops trusts by default, a name is trusted only when

* it is a class defined inside scikit-learn (an estimator, a tree, an optimiser's state),
* or a NumPy scalar or dtype class, or a SciPy sparse matrix or array class;

every function, and every other type, needs the auditor's ``--trust NAME``. The name is resolved by importing its
module, which only ever imports a module of scikit-learn, NumPy or SciPy themselves.
"""

from __future__ import annotations

import importlib
from typing import Any

_LIBRARIES = ("sklearn.", "numpy.", "scipy.")


def _resolve(name: str) -> Any:
    """The object ``name`` refers to, or None when it cannot be found inside the three libraries."""
    if not name.startswith(_LIBRARIES) or "__" in name:
        return None
    module_name, _, attr = name.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception:
        return None
    return getattr(module, attr, None)


def is_safe_type(name: str) -> bool:
    """True when a ``.skops`` node of type ``name`` is safe to rebuild without the auditor's say-so."""
    obj = _resolve(name)
    if not isinstance(obj, type):
        return False  # functions, and anything that is not a class
    import numpy as np
    import scipy.sparse as sp

    if name.startswith("sklearn."):
        return obj.__module__.startswith("sklearn.")
    if name.startswith("numpy."):
        return issubclass(obj, (np.generic, np.dtype))
    return issubclass(obj, (sp.spmatrix, sp.sparray))


def refused_types(untrusted: list[str], trust: tuple[str, ...]) -> list[str]:
    """The names of ``untrusted`` (from ``skops.io.get_untrusted_types``) that neither the rule above nor the
    auditor's ``trust`` list allows."""
    return [t for t in untrusted if t not in trust and not is_safe_type(t)]
