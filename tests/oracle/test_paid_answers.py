"""Budgets that hold against a paid target (issue 32, item 4).

Every sample sent is charged, retries and timed-out attempts included; answers are journaled as each request's
answer arrives; the cap holds across kills and resumes; a rerun never deletes paid answers without ``--fresh``.
Every count checked here is the server's own: the samples it really computed labels for. Loopback only.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from _loopback import Server
from _paid_target import SHAPE, PaidTarget, labels_of, spend, workload

from labelleak.errors import BudgetExhaustedError, InvalidInputError
from labelleak.oracle.cache import CachedOracle, read_journal, row_digests
from labelleak.oracle.remote.labelleak import LabelleakOracle
from labelleak.oracle.remote.transport import RetryPolicy, Transport
from labelleak.pipeline import make_config
from labelleak.pipeline.checkpoint import Checkpoint

HERE = Path(__file__).parents[1]  # tests/, where the helper modules live
BATCHES = len(list(workload(0)))


class Killed(BaseException):
    """A kill as the client sees it: it stops where it is, and nothing is cleaned up."""


class KillSwitch(httpx.BaseTransport):
    """Kills the client at its ``at``-th request: before sending it, or once the server has answered (and billed)."""

    def __init__(self, at: int, *, after: bool) -> None:
        self.inner = httpx.HTTPTransport()
        self.at, self.after, self.count = at, after, 0
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.count += 1
            mine = self.count == self.at
        if mine and not self.after:
            raise Killed
        response = self.inner.handle_request(request)
        if mine:
            response.read()
            response.close()
            raise Killed
        return response

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def paid():
    """A fresh paid target per test (its fault generator and bill start anew)."""
    target = PaidTarget(seed=0)
    with Server(target.app) as server:
        yield target, server.url


def _drain(target: PaidTarget) -> None:
    """Wait until the server has finished every request it received (a stalled answer still bills first)."""
    deadline = time.monotonic() + 5
    while target.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.02)


def _journaled(path: Path) -> set[bytes]:
    return set(read_journal(path).rows["key"].tolist())


def _check(target: PaidTarget, path: Path, known: list[set[bytes]], *, cap: int, in_flight: int, done: int) -> None:
    """The server's bill against the cap, the journal and what each resumed phase already had journaled."""
    journal = read_journal(path)
    assert target.answered <= journal.sent <= cap  # billed <= charged (retries, refusals) <= the cap
    seen: set[bytes] = set()
    rebought: set[bytes] = set()
    for phase, journaled in enumerate(known):
        billed = target.billed.get(phase, [])
        assert not journaled & set(billed), f"phase {phase} bought answers it had journaled"
        rebought |= seen & set(billed)
        seen |= set(billed)
    # only what was in flight when a run stopped (at most `in_flight` samples each time) is ever bought again
    assert len(rebought) <= (len(known) - 1) * in_flight
    assert done == BATCHES or cap - journal.sent < 30  # finished, or stopped at the cap itself


def test_every_attempt_is_charged_and_a_retry_past_the_cap_is_not_sent(paid, tmp_path):
    target, url = paid
    target.faults = {"lost": 1.0}  # every request is answered and billed, then fails: only retries follow
    policy = RetryPolicy(timeout=1.0, retries=5, backoff=0.0, max_wait=0.0)
    oracle = LabelleakOracle(Transport(url, policy=policy), batch_size=10, max_queries=25)
    journal = CachedOracle(oracle, tmp_path / "j.bin")
    with pytest.raises(BudgetExhaustedError, match=r"a retry\) would exceed max_queries=25 \(20 sent"):
        journal.predict_labels(np.full((10, *SHAPE), 0.5, np.float32))
    assert target.answered == 20 and oracle.sent == 20 and oracle.retried == 1  # the second retry never left
    journal.close()
    assert read_journal(tmp_path / "j.bin").sent == 20 and len(read_journal(tmp_path / "j.bin").rows) == 0
    with pytest.raises(BudgetExhaustedError, match="10 more samples would exceed max_queries=25 \\(20 sent"):
        oracle.predict_labels(np.full((10, *SHAPE), 0.25, np.float32))  # refused whole, before sending any
    assert target.answered == 20
    oracle.close()


@pytest.mark.parametrize("answered", [False, True])
def test_answers_are_journaled_as_they_arrive_and_a_resume_starts_from_what_was_sent(paid, tmp_path, answered):
    """Killed at the third request, before it is sent or after the server answered it: the two answers received
    are on disk (no flush, no close), the third request is charged either way, and only it is bought again."""
    target, url = paid
    policy = RetryPolicy(timeout=1.0, retries=2, backoff=0.0, max_wait=0.0)
    x = np.random.default_rng(0).uniform(0, 1, (30, *SHAPE)).astype(np.float32)
    oracle = LabelleakOracle(Transport(url, policy=policy, transport=KillSwitch(4, after=answered)), batch_size=10)
    first = CachedOracle(oracle, tmp_path / "j.bin")
    with pytest.raises(Killed):
        first.predict_labels(x)  # GET /info, two requests answered, then the third
    oracle.close()
    assert target.answered == (30 if answered else 20)
    again = LabelleakOracle(Transport(url, policy=policy), batch_size=10)
    resumed = CachedOracle(again, tmp_path / "j.bin")
    assert resumed.spent_before == 30 and len(resumed) == 20
    np.testing.assert_array_equal(resumed.predict_labels(x), labels_of(x))
    assert again.sent == 10 and resumed.hits == 20 and target.answered == (40 if answered else 30)
    resumed.close()
    again.close()
    assert read_journal(tmp_path / "j.bin").sent == 40  # the third request, charged in both runs
    rows = row_digests(torch.from_numpy(x)).tolist()
    assert sorted(target.billed[0]) == sorted(rows + (rows[20:] if answered else []))


def test_randomized_kills_retries_timeouts_and_caps_never_pass_the_cap(paid, tmp_path):
    target, url = paid
    rng = np.random.default_rng(2024)
    started = time.monotonic()
    for trial in range(12):
        cap = int(rng.integers(40, 800))
        batch, concurrency = int(rng.choice([4, 8, 16])), int(rng.choice([1, 3]))
        faults = {k: float(rng.choice([0.0, 0.1, 0.2])) for k in ("refused", "lost")}
        target.reset(seed=trial, faults={**faults, "slow": float(rng.choice([0.0, 0.03]))})
        path = tmp_path / f"journal-{trial}.bin"
        requests = max(cap // batch // 2, 3)  # about the requests one phase sends before the cap (a kill inside)
        kills = [(int(rng.integers(2, requests)), bool(rng.integers(2))) for _ in range(int(rng.integers(1, 3)))]
        known: list[set[bytes]] = []
        done = 0
        for phase in range(len(kills) + 4):  # the kills, then resumes until the work is done or the cap is reached
            _drain(target)
            target.phase = phase
            known.append(_journaled(path))
            switch = KillSwitch(kills[phase][0], after=kills[phase][1]) if phase < len(kills) else None
            try:
                done = spend(
                    url, str(path), cap, seed=0, batch=batch, concurrency=concurrency, timeout=0.2, transport=switch
                )
            except Killed:
                continue
            if done == BATCHES or cap - read_journal(path).sent < 30:
                break
        _drain(target)
        context = f"trial {trial}: cap {cap}, batch {batch}, concurrency {concurrency}, kills {kills}"
        assert target.answered <= cap, context
        _check(target, path, known, cap=cap, in_flight=batch * concurrency, done=done)
    assert time.monotonic() - started < 40


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_9_then_resume_holds_the_cap_and_buys_nothing_journaled_again(paid, tmp_path, seed):
    target, url = paid
    rng = np.random.default_rng(seed)
    cap, batch, concurrency = int(rng.integers(200, 600)), int(rng.choice([4, 8])), int(rng.choice([1, 3]))
    target.faults = {"refused": 0.1, "lost": 0.1, "slow": 0.02}
    path = tmp_path / "journal.bin"
    args = [url, str(path), str(cap), "0", str(batch), str(concurrency)]
    child = subprocess.Popen([sys.executable, str(HERE / "_paid_target.py"), *args], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "spending"
    bill = int(rng.integers(20, 150))
    deadline = time.monotonic() + 60
    while target.answered < bill and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL
    _drain(target)
    known = [set(), _journaled(path)]
    target.phase = 1
    done = spend(url, str(path), cap, seed=0, batch=batch, concurrency=concurrency, timeout=0.2)
    _drain(target)
    assert target.answered <= cap and target.billed.get(0)
    _check(target, path, known, cap=cap, in_flight=batch * concurrency, done=done)


# ---- a rerun without --resume ------------------------------------------------------------------------------------


def _unfinished(out: Path) -> bytes:
    """An unfinished run's checkpoint in ``out`` with 12 journaled answers; returns the journal's bytes."""
    Checkpoint(out, {"seed": 0}, resume=False)
    from labelleak.oracle import CallableOracle

    inner = CallableOracle(lambda x: np.zeros(len(x), np.int64), input_shape=(3,), n_classes=2)
    journal = CachedOracle(inner, out / "checkpoint" / "journal.bin")
    journal.predict_labels(np.random.default_rng(0).uniform(0, 1, (12, 3)).astype(np.float32))
    journal.close()
    return (out / "checkpoint" / "journal.bin").read_bytes()


def test_a_rerun_without_resume_keeps_the_paid_answers_until_fresh(tmp_path):
    saved = _unfinished(tmp_path)
    with pytest.raises(InvalidInputError, match=r"holds 12 journaled answers.*--resume.*--fresh \(deletes them\)"):
        Checkpoint(tmp_path, {"seed": 0}, resume=False)
    assert (tmp_path / "checkpoint" / "journal.bin").read_bytes() == saved
    with pytest.raises(InvalidInputError, match="--resume and --fresh: give one"):
        Checkpoint(tmp_path, {"seed": 0}, resume=True, fresh=True)
    Checkpoint(tmp_path, {"seed": 0}, resume=True)  # continuing keeps them
    assert (tmp_path / "checkpoint" / "journal.bin").read_bytes() == saved
    with pytest.raises(InvalidInputError, match="options differ.*--fresh"):
        Checkpoint(tmp_path, {"seed": 1}, resume=True)
    Checkpoint(tmp_path, {"seed": 1}, resume=False, fresh=True)
    assert not (tmp_path / "checkpoint" / "journal.bin").exists()
    Checkpoint(tmp_path, {"seed": 1}, resume=False)  # no journaled answers: a plain rerun starts over as before


def test_fresh_and_resume_together_are_refused_by_the_config_and_the_command_line():
    from typer.testing import CliRunner

    from labelleak.cli import app

    with pytest.raises(InvalidInputError, match="resume, fresh: give one"):
        make_config(resume=True, fresh=True)
    assert make_config(fresh=True).fresh is True
    result = CliRunner().invoke(app, ["audit", "--resume", "--fresh", "--quiet"])
    assert result.exit_code == 2 and "resume, fresh: give one" in result.output
