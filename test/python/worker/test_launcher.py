"""bloom-worker's launcher: one pod of several rank processes, one health port, supervised as a unit."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from worker_helpers import BIN, Pod, alive, children, local_generate

PROMPT = [5, 6, 7]


def test_readyz_waits_for_every_local_rank(shards_a: dict[int, Path], spawn) -> None:
    """Pod 0 of a 2-pod group alone: its ranks load and wait in the rendezvous (503, per-rank phases);
    pod 1 arrives: both pods are ready."""
    g = spawn(shards_a[4], 4, nproc=2, pods=[0], timeout=120)
    pod0 = g.pods[0]
    deadline = time.monotonic() + 60
    phases = None
    while phases != [(0, "rendezvous", True), (1, "rendezvous", True)]:
        assert pod0.proc.poll() is None and time.monotonic() < deadline, (phases, pod0.output()[-2000:])
        time.sleep(0.2)
        try:
            r = pod0.health("/readyz")
        except requests.RequestException:  # the launcher is not serving yet
            continue
        phases = [(x["rank"], x["phase"], x["shard_loaded"]) for x in r.json()["ranks"]]
    assert r.status_code == 503 and r.json()["ready"] is False
    assert pod0.health().status_code == 200
    g.start(1)
    g.wait_ready(120)
    for p in g.pods:
        assert [x["phase"] for x in p.health("/readyz").json()["ranks"]] == ["ready", "ready"]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGKILL, 128 + signal.SIGKILL), (signal.SIGTERM, 1)])
def test_a_rank_that_exits_takes_the_pod_down(sig: signal.Signals, code: int, shards_a: dict[int, Path], spawn):
    """Killed (its code, as 128 + signal) or stopped cleanly while the pod is not stopping (1): the
    launcher stops the other ranks and exits within 5 s, leaving no process behind."""
    g = spawn(shards_a[2], 2, nproc=2).wait_ready(120)
    pod = g.pods[0]
    pids = pod.rank_pids()
    assert sorted(children(pod.proc.pid)) == sorted(pids)
    t0 = time.monotonic()
    os.kill(pids[1], sig)
    assert g.wait_exit(0, 10) == code, pod.output()[-2000:]
    assert time.monotonic() - t0 < 5
    assert not any(alive(pid) for pid in pids)


def test_sigterm_stops_every_rank_of_the_pod(shards_a: dict[int, Path], spawn) -> None:
    g = spawn(shards_a[2], 2, nproc=2).wait_ready(120)
    pod = g.pods[0]
    pids = pod.rank_pids()
    pod.proc.send_signal(signal.SIGTERM)
    assert g.wait_exit(0, 30) == 0, pod.output()[-2000:]
    assert not any(alive(pid) for pid in pids)
    assert "stopping: forwarding SIGTERM to 2 ranks" in pod.output()


@pytest.mark.parametrize("grace", [6, 12])
def test_sigterm_gives_ranks_the_pods_grace_period(grace: int, shards_a: dict[int, Path], spawn) -> None:
    """A rank that cannot stop (SIGSTOPped) is killed after BLOOM_TERMINATION_GRACE_SECONDS less 2 s:
    no sooner (a user's longer grace is honoured), and before the kubelet's own SIGKILL."""
    g = spawn(shards_a[2], 2, nproc=2, overrides={0: {"BLOOM_TERMINATION_GRACE_SECONDS": str(grace)}}).wait_ready(120)
    pod = g.pods[0]
    pids = pod.rank_pids()
    os.kill(pids[1], signal.SIGSTOP)
    t0 = time.monotonic()
    pod.proc.send_signal(signal.SIGTERM)
    assert g.wait_exit(0, grace + 10) == 128 + signal.SIGKILL, pod.output()[-2000:]
    elapsed = time.monotonic() - t0
    assert grace - 2 - 0.5 <= elapsed < grace, f"stopped after {elapsed:.1f}s with a grace of {grace}s"
    assert not any(alive(pid) for pid in pids)


def test_torchrun_runs_the_ranks_from_the_pet_defaults(shards_a: dict[int, Path], spawn, tmp_path: Path) -> None:
    """`torchrun -m bloom_worker.main` with no topology flags: rank 0 joins the agent's store, local
    rank 0 serves the pod's health port for itself only."""
    g = spawn(shards_a[2], 2, nproc=2, pods=[])
    env = g.envs[0]
    log = tmp_path / "torchrun.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen([str(BIN / "torchrun"), "-m", "bloom_worker.main"], env=env, stdout=f, stderr=f)
    pod = Pod(0, env["BLOOM_BIND_ADDRESS"], int(env["BLOOM_HEALTH_PORT"]), proc, log)
    g.pods.append(pod)
    g.wait_ready(120)
    assert [r["rank"] for r in pod.health("/readyz").json()["ranks"]] == [0]
    body = {"input_ids": PROMPT, "max_new_tokens": 5, "stop_at_eos": False}
    got = requests.post(g.api("/generate"), json=body, timeout=60).json()["output_ids"]
    assert got == local_generate(shards_a[1], [PROMPT], 5, want_logits=False)[0]["output_ids"]
