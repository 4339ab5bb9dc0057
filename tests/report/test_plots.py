"""Figures are written without pyplot: no global backend choice, no state shared with the user's own plots."""

from __future__ import annotations

import subprocess
import sys


def test_plotting_leaves_matplotlib_global_state_alone(tmp_path):
    code = f"""
import sys, numpy as np
from labelleak.report.figures import plot_roc
m = np.r_[np.ones(20), np.zeros(20)].astype(bool)
plot_roc({{"a": (m, np.arange(40.0))}}, {str(tmp_path / "roc.png")!r})
print("matplotlib.pyplot" in sys.modules)
"""
    env = {"PYTHONPATH": ":".join(sys.path), "MPLBACKEND": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["False"]  # pyplot (and with it a global backend) was never touched
    assert (tmp_path / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
