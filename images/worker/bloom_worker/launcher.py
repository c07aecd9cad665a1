"""The pod's launcher: one rank process per GPU, supervised as torchrun's agent does, and one health server.

* starts NPROC_PER_NODE rank processes (`python -m bloom_worker.main` with RANK, LOCAL_RANK and
  LOCAL_WORLD_SIZE set; every one sees all of the pod's GPUs and takes cuda:LOCAL_RANK), each with the
  write end of a report pipe (report.py); a rank dies with the launcher (PR_SET_PDEATHSIG);
* the first rank to exit while the pod is not stopping (even with 0) takes the pod down: the others
  get SIGTERM, then SIGKILL after a grace, and the launcher exits with that rank's code (1 if it was 0),
  so that Kubernetes restarts the pod and the group is recreated;
* SIGTERM or SIGINT is forwarded to every rank; the launcher waits for them (bounded) and exits 0 when
  they all stopped cleanly;
* serves BLOOM_HEALTH_PORT for the whole pod (health.py): /readyz only when every local rank is ready
  and none is stuck, /livez unless a local rank exited, went silent or its engine loop is stuck.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

from .env import BLOOM_REPORT_FD, LOCAL_RANK, LOCAL_WORLD_SIZE, RANK, PodEnv
from .health import Bounds, RankView, start_health_server
from .metrics import Metrics
from .report import start_reader

log = logging.getLogger("bloom_worker.launcher")

FAILURE_GRACE_S = 2.0  # a failed pod is restarted anyway: do not wait long for the survivors
STOP_MARGIN_S = 2.0  # of the pod's grace period, kept to kill the ranks and exit before the kubelet's SIGKILL
POLL_S = 0.1


def spawn(pod: PodEnv, view: RankView) -> subprocess.Popen:
    read_fd, write_fd = os.pipe()
    env = {
        **os.environ,
        RANK: str(view.rank),
        LOCAL_RANK: str(view.local_rank),
        LOCAL_WORLD_SIZE: str(pod.nproc_per_node),
        BLOOM_REPORT_FD: str(write_fd),
    }
    try:
        proc = subprocess.Popen([sys.executable, "-m", "bloom_worker.main"], env=env, pass_fds=(write_fd,))
    finally:
        os.close(write_fd)  # the rank holds the only write end: its exit ends the reader
    view.pid = proc.pid
    start_reader(os.fdopen(read_fd, "rb"), view)
    return proc


def exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode  # killed by signal N: 128 + N, as shells say


def reap(procs: list[subprocess.Popen], views: list[RankView]) -> list[RankView]:
    """Record the exit codes of the ranks that exited; returns their views."""
    for p, v in zip(procs, views, strict=True):
        if v.exit_code is None and p.poll() is not None:
            v.exit_code = exit_code(p.returncode)
    return [v for v in views if v.exit_code is not None]


def wait_all(procs: list[subprocess.Popen], views: list[RankView], timeout: float) -> bool:
    """Wait until every rank exited or the timeout passed; True when they all exited."""
    deadline = time.monotonic() + timeout
    while True:
        if len(reap(procs, views)) == len(views):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)


def signal_all(procs: list[subprocess.Popen], sig: signal.Signals) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(sig)


def stop_all(procs: list[subprocess.Popen], views: list[RankView], grace: float) -> None:
    signal_all(procs, signal.SIGTERM)
    if not wait_all(procs, views, grace):
        log.warning("ranks still running after %.0fs; killing them", grace)
        signal_all(procs, signal.SIGKILL)
        wait_all(procs, views, 10.0)


def stop_grace(termination_grace: int) -> float:
    """How long stopping ranks get after SIGTERM: the pod's grace period less a margin, at least 1 s."""
    return max(1.0, termination_grace - STOP_MARGIN_S)


def supervise(procs: list[subprocess.Popen], views: list[RankView], stopping: threading.Event, grace: float) -> int:
    while not stopping.is_set():
        exited = reap(procs, views)
        if exited:
            failed = next((v for v in exited if v.exit_code), exited[0])
            log.error("rank %d exited with %d; stopping the pod's other ranks", failed.rank, failed.exit_code)
            stop_all(procs, views, FAILURE_GRACE_S)
            return failed.exit_code or 1
        stopping.wait(POLL_S)
    log.info("stopping: forwarding SIGTERM to %d ranks", len(procs))
    stop_all(procs, views, grace)
    codes = [v.exit_code for v in views]
    return next((c for c in codes if c), 0)


def run_launcher(pod: PodEnv) -> int:
    logging.basicConfig(
        level=os.environ.get("BLOOM_LOG_LEVEL", "INFO"),
        format=f"%(asctime)s pod{pod.node_rank}/{pod.nnodes} %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    identity = {"deployment": pod.deployment, "group": str(pod.group), "epoch": pod.epoch}
    metrics = Metrics()
    metrics.set(
        "bloom_pod_info",
        1.0,
        {
            **identity,
            "node_rank": str(pod.node_rank),
            "nnodes": str(pod.nnodes),
            "nproc_per_node": str(pod.nproc_per_node),
            "world_size": str(pod.world_size),
        },
    )
    views = [RankView(rank=pod.rank_of(lr), local_rank=lr) for lr in range(pod.nproc_per_node)]
    try:
        start_health_server(
            pod.bind_address,
            pod.health_port,
            lambda: views,
            metrics,
            {**identity, "node_rank": str(pod.node_rank)},
            Bounds(liveness=pod.liveness_timeout, readiness=pod.readiness_timeout),
        )
    except OSError as e:
        print(f"bloom-worker: error: cannot serve health on {pod.bind_address}:{pod.health_port}: {e}", file=sys.stderr)
        return 1
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.set())
    # spawned from the main thread: PR_SET_PDEATHSIG fires when the spawning thread ends
    procs = [spawn(pod, v) for v in views]
    log.info("started ranks %s (pids %s)", [v.rank for v in views], [p.pid for p in procs])
    code = supervise(procs, views, stopping, stop_grace(pod.termination_grace))
    log.info("exiting with %d", code)
    return code
