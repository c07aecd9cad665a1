"""Liveness and readiness of a pod: /livez fails when a rank's engine loop is stuck (a hung collective, a
stopped process) and not when the group is idle or still starting; /readyz waits for the shard and the
communicator and leaves first. Unit tests of the heartbeat, then real gloo groups (one process per rank)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import requests

from bloom_worker.engine import Engine
from bloom_worker.engine_config import EngineConfig
from bloom_worker.health import Progress, RankView
from bloom_worker.metrics import Metrics
from bloom_worker.sequence import Request, SamplingParams, Token
from worker_helpers import Group, Pod, alive, local_model

LIVENESS = "BLOOM_LIVENESS_TIMEOUT_SECONDS"
READINESS = "BLOOM_READINESS_TIMEOUT_SECONDS"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# --- the heartbeat, in-process ------------------------------------------------------------------------


def test_progress_beats_and_marks_the_op_it_is_blocked_in() -> None:
    clock = Clock()
    p = Progress(clock)
    assert p.snapshot() == {"progress_age_s": None, "op": None, "op_age_s": None}  # the engine is not running
    p.beat()
    clock.t += 2
    with p.inside("forward"):
        clock.t += 1
        with p.inside("all_reduce"):
            clock.t += 3
            assert p.snapshot() == {"progress_age_s": 6.0, "op": "all_reduce", "op_age_s": 3.0}
        # a collective that completed is progress; the outer op is restored with its own start
        assert p.snapshot() == {"progress_age_s": 0.0, "op": "forward", "op_age_s": 4.0}
        clock.t += 1
    assert p.snapshot() == {"progress_age_s": 0.0, "op": None, "op_age_s": None}
    clock.t += 5
    with pytest.raises(RuntimeError), p.inside("broadcast"):
        raise RuntimeError("peer gone")
    assert p.snapshot() == {"progress_age_s": 5.0, "op": None, "op_age_s": None}, "a failed op is no progress"


def view_at(clock: Clock, progress: dict[str, object] | None = None, report_age: float = 0.0) -> RankView:
    v = RankView(rank=1, local_rank=1)
    v.progress = progress or {"progress_age_s": None, "op": None, "op_age_s": None}
    v.last_report = clock.t - report_age
    return v


def test_a_view_is_stuck_when_exited_silent_or_without_progress() -> None:
    clock = Clock()
    now = clock.t
    # not started yet (loading, rendezvous): only the reports count
    assert view_at(clock).stuck(5, now) is None
    assert RankView(rank=0, local_rank=0).stuck(5, now) is None, "before its first report a rank is starting"
    assert "no report for 7.0s" in (view_at(clock, report_age=7).stuck(5, now) or "")
    # running: the rank's progress age plus the age of its report
    idle = {"progress_age_s": 0.8, "op": None, "op_age_s": None}
    assert view_at(clock, idle, report_age=0.9).stuck(5, now) is None
    blocked = {"progress_age_s": 4.5, "op": "all_reduce", "op_age_s": 4.2}
    why = view_at(clock, blocked, report_age=1.0).stuck(5, now)
    assert why == "engine loop made no progress for 5.5s, blocked in all_reduce for 5.2s"
    assert view_at(clock, blocked, report_age=1.0).stuck(10, now) is None
    exited = view_at(clock, idle)
    exited.exit_code = 137
    assert exited.stuck(5, now) == "exited with code 137"
    assert not exited.ready


def test_an_idle_engine_keeps_beating_and_a_stuck_step_does_not(shards_a: dict[int, Path]) -> None:
    """The engine thread itself beats, from its idle loop (rank 0 of a group of one)."""
    progress = Progress()
    engine = Engine(local_model(shards_a[1]), Metrics(), EngineConfig(), progress=progress)
    stall = threading.Event()
    release = threading.Event()
    forward = engine.model.forward

    def slow_forward(*a, **kw):
        if stall.is_set():
            release.wait(30)
        return forward(*a, **kw)

    engine.model.forward = slow_forward  # type: ignore[method-assign]
    t = threading.Thread(target=engine.run_leader, daemon=True)
    t.start()
    try:
        ages = []
        for _ in range(12):  # 3 s idle: the loop turns every second (its queue wait)
            time.sleep(0.25)
            ages.append(progress.snapshot()["progress_age_s"])
        assert None not in ages and max(ages) < 1.5, ages  # type: ignore[type-var]
        stall.set()
        req = Request(ids=[5, 6], params=SamplingParams(max_tokens=2, ignore_eos=True))
        engine.submit(req)
        time.sleep(2.5)
        snap = progress.snapshot()
        assert snap["op"] == "forward" and snap["progress_age_s"] > 2.0, snap  # type: ignore[operator]
        release.set()
        assert isinstance(req.events.get(timeout=30), Token)
        time.sleep(0.2)
        assert progress.snapshot()["progress_age_s"] < 1.5  # type: ignore[operator]
    finally:
        release.set()
        engine.stopping.set()
        t.join(10)


# --- real pods ----------------------------------------------------------------------------------------


def get(pod: Pod, path: str) -> requests.Response:
    return requests.get(pod.url(path), timeout=5)


def watch(pods: list[Pod], seconds: float) -> list[tuple[str, int, int]]:
    """(path, pod, status) of every probe of every pod, every 0.25 s for `seconds`."""
    seen = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for p in pods:
            for path in ("/livez", "/readyz", "/healthz"):
                seen.append((path, p.node_rank, get(p, path).status_code))
        time.sleep(0.25)
    return seen


def first(pod: Pod, path: str, code: int, t0: float, timeout: float) -> tuple[float, dict]:
    """Seconds after t0 at which `path` first answered `code`, and that body."""
    while time.monotonic() - t0 < timeout:
        r = get(pod, path)
        if r.status_code == code:
            return time.monotonic() - t0, r.json()
        time.sleep(0.1)
    raise AssertionError(f"{path} of pod {pod.node_rank} not {code} after {timeout}s: {get(pod, path).text}")


# the liveness and readiness bounds of these groups: above the slop of a healthy idle rank (a beat every
# second, a report every second: up to ~2 s, more on a loaded machine), well below the gloo timeout (60 s)
L, R = 6.0, 3.5


@pytest.mark.parametrize("stopped", [1, 0], ids=["follower-stopped-with-work", "leader-stopped-idle"])
def test_a_hung_collective_fails_livez_within_the_bound(stopped: int, shards_a: dict[int, Path], spawn) -> None:
    """A TP=2 group of two pods of one rank, idle past the bound: live and ready throughout. Then one
    rank is SIGSTOPped. Its peer is blocked in a collective (rank 0 in the prefill's collectives of a
    request it was given; rank 1, idle, in the header broadcast that rank 0 no longer sends): its
    reporter thread still reports, but its engine loop stops beating, so its pod's /readyz fails after
    the readiness bound and /livez after the liveness bound; the stopped rank's pod fails for its
    silence; /healthz answers 200 throughout. SIGCONT: the collective completes, the request is served
    and both pods are live and ready again (the probes judge the present, nothing is latched)."""
    g: Group = spawn(shards_a[2], 2, optional={LIVENESS: str(L), READINESS: str(R)}).wait_ready(120)
    idle = watch(g.pods, L + 2)
    assert {code for _, _, code in idle} == {200}, [s for s in idle if s[2] != 200]
    body = {"input_ids": [5, 6, 7], "max_new_tokens": 4, "stop_at_eos": False}
    want = requests.post(g.api("/generate"), json=body, timeout=60).json()["output_ids"]

    peer = g.pods[1 - stopped]
    pid = g.pods[stopped].rank_pids()[0]
    os.kill(pid, signal.SIGSTOP)
    t0 = time.monotonic()
    result: dict[str, object] = {}
    if stopped == 1:  # give rank 0 work: it blocks in the prefill's collectives

        def call() -> None:
            r = requests.post(g.api("/generate"), json=body, timeout=60)
            result.update(code=r.status_code, ids=r.json().get("output_ids"))

        caller = threading.Thread(target=call)
        caller.start()
    try:
        unready_at, ready_body = first(peer, "/readyz", 503, t0, L + 10)
        dead_at, live_body = first(peer, "/livez", 503, t0, L + 10)
        assert R - 1.5 <= unready_at <= R + 3 and unready_at < dead_at, (unready_at, dead_at)
        assert L - 1.5 <= dead_at <= L + 4, dead_at
        (rank,) = live_body["ranks"]
        assert rank["rank"] == 1 - stopped and rank["exit_code"] is None and alive(rank["pid"])
        assert rank["stuck"].startswith("engine loop made no progress"), rank
        assert rank["op"] in (["all_reduce", "all_gather", "broadcast", "forward"] if stopped else ["broadcast"]), rank
        assert rank["last_report_age_s"] < 3.0, "its reporter goes on: the heartbeat is the engine thread's"
        assert live_body["live"] is False and live_body["timeout_s"] == L
        assert ready_body["ready"] is False and ready_body["ranks"][0]["communicator_up"] is True
        healthz = get(peer, "/healthz")
        assert healthz.status_code == 200 and healthz.json()["status"] == "ok"
        assert healthz.json()["ranks"][0]["stuck"].startswith("engine loop made no progress")
        # the stopped rank's own pod: silent
        _, silent = first(g.pods[stopped], "/livez", 503, t0, L + 10)
        assert "no report for" in silent["ranks"][0]["stuck"], silent
        assert get(g.pods[stopped], "/healthz").status_code == 200
        metrics = get(peer, "/metrics").text
        assert "bloom_pod_live 0" in metrics and "bloom_pod_ready 0" in metrics
    finally:
        os.kill(pid, signal.SIGCONT)
    t1 = time.monotonic()
    for p in g.pods:
        first(p, "/livez", 200, t1, 10)
        first(p, "/readyz", 200, t1, 10)
    if stopped == 1:
        caller.join(60)
        assert result == {"code": 200, "ids": want}
    assert requests.post(g.api("/generate"), json=body, timeout=60).json()["output_ids"] == want
    assert all(p.proc.poll() is None for p in g.pods)


def test_startup_is_not_a_stall_and_readyz_waits_for_shard_and_communicator(shards_a: dict[int, Path], spawn):
    """Pod 0 of a 2-pod group alone, waiting in the rendezvous for several liveness bounds: /livez 200
    (the engine loop has not started: the startup probe and the operator's startup timeout govern this
    time), /readyz 503 from the first answer on, whatever the phase; pod 1 arrives: both ready and live."""
    g: Group = spawn(shards_a[2], 2, pods=[0], timeout=120, optional={LIVENESS: "3", READINESS: "2"})
    pod0 = g.pods[0]
    seen: list[tuple[int, int, str, bool, bool]] = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 10:
        assert pod0.proc.poll() is None, pod0.output()[-2000:]
        try:
            ready, live = get(pod0, "/readyz"), get(pod0, "/livez")
        except requests.RequestException:  # the launcher is not serving yet
            time.sleep(0.05)
            continue
        (r,) = ready.json()["ranks"]
        seen.append((ready.status_code, live.status_code, r["phase"], r["shard_loaded"], r["communicator_up"]))
        time.sleep(0.05)
    assert seen and {s[0] for s in seen} == {503}, seen
    assert {s[1] for s in seen} == {200}, [s for s in seen if s[1] != 200]
    assert seen[-1][2:] == ("rendezvous", True, False), seen[-1]
    assert all(phase in ("starting", "loading", "rendezvous") for _, _, phase, _, _ in seen)
    assert all(loaded for _, _, phase, loaded, _ in seen if phase == "rendezvous")
    g.start(1)
    g.wait_ready(120)
    for p in g.pods:
        assert get(p, "/livez").status_code == 200 and get(p, "/readyz").status_code == 200
