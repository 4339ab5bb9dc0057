"""Run a command and report the peak resident memory of its whole process tree (summed over processes), sampled
every 0.2 s from /proc. `/usr/bin/time -v` reports only the largest single process, which misses test suites that
start servers and child audits. Linux only. Usage: python scripts/peak_rss.py -- bash scripts/test.sh"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def _tree_rss_kib(root: int) -> tuple[int, int]:
    """(sum, max) of VmRSS in KiB over ``root`` and all its descendants."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid = int(entry.name)
        parents[pid] = int(fields.get("PPid", "0").strip())
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(children)
        frontier.extend(children)
    sizes = [rss.get(p, 0) for p in tree]
    return sum(sizes), max(sizes, default=0)


def main(argv: list[str]) -> int:
    cmd = argv[1:] if argv[:1] == ["--"] else argv
    if not cmd:
        print("usage: peak_rss.py -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    started = time.monotonic()
    proc = subprocess.Popen(cmd)
    peak_sum = peak_one = 0
    while proc.poll() is None:
        total, largest = _tree_rss_kib(proc.pid)
        peak_sum, peak_one = max(peak_sum, total), max(peak_one, largest)
        time.sleep(0.2)
    print(
        f"peak_rss: tree {peak_sum / 1024**2:.2f} GiB, largest process {peak_one / 1024**2:.2f} GiB, "
        f"wall {time.monotonic() - started:.0f} s, exit {proc.returncode}",
        file=sys.stderr,
    )
    return proc.returncode


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main(sys.argv[1:]))
