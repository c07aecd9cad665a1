"""One rank process: started by bloom-worker's launcher (reports to it) or by torchrun.

report channel or own health server -> device cuda:LOCAL_RANK -> load and verify the shard ->
rendezvous (deadline, epoch check) -> ready -> global rank 0 serves the API and leads batches, the
other ranks follow.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from .engine import Engine
from .env import BLOOM_API_KEY_FILE, LOCAL_RANK, RankEnv, debug_api, parse_engine_env
from .health import Bounds, Progress, RankView, State, start_health_server
from .job import Limits, Model
from .loader import ShardError, load_shard
from .metrics import Metrics
from .model import BloomTP, Comm
from .rendezvous import RendezvousError, backend_for, rendezvous
from .report import die_with_parent, message, start_reporter
from .server import Api, read_api_key, start_api_server

log = logging.getLogger("bloom_worker")


def fail(state: State, message: str, code: int = 1) -> int:
    state.set(error=message, phase="failed")
    log.error("%s", message)
    print(f"bloom-worker: error: {message}", file=sys.stderr, flush=True)
    return code


def select_device(local_rank: int) -> torch.device:
    """cuda:LOCAL_RANK of all the pod's GPUs (never a narrowed CUDA_VISIBLE_DEVICES), or the CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise ValueError(
            f"{LOCAL_RANK}={local_rank} but this process sees {count} CUDA device(s): the pod needs one GPU per"
            " local rank, all visible to every rank process"
        )
    device = torch.device("cuda", local_rank)
    torch.cuda.set_device(device)
    return device


def publish_health(env: RankEnv, state: State, metrics: Metrics, progress: Progress, identity: dict[str, str]) -> None:
    """Report to our launcher; without one (torchrun), local rank 0 serves the pod's health port for
    itself only (the other local ranks are not seen there)."""
    if env.report_fd is not None:
        die_with_parent()
        start_reporter(env.report_fd, state, metrics, progress)
    elif env.local_rank == 0:
        view = RankView(rank=env.rank, local_rank=env.local_rank, pid=os.getpid())

        def views() -> list[RankView]:
            view.update(message(state, metrics, progress))
            return [view]

        pod = env.pod
        bounds = Bounds(liveness=pod.liveness_timeout, readiness=pod.readiness_timeout)
        start_health_server(pod.bind_address, pod.health_port, views, Metrics(), identity, bounds)


def run_rank(env: RankEnv) -> int:
    pod = env.pod
    logging.basicConfig(
        level=os.environ.get("BLOOM_LOG_LEVEL", "INFO"),
        format=f"%(asctime)s rank{env.rank}/{env.world_size} %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    state, metrics, progress = State(), Metrics(), Progress()
    identity = {"deployment": pod.deployment, "group": str(pod.group), "epoch": pod.epoch}
    rank_identity = {**identity, "rank": str(env.rank), "local_rank": str(env.local_rank)}
    metrics.set("bloom_worker_info", 1.0, {**rank_identity, "world_size": str(env.world_size)})
    deadline = time.monotonic() + pod.rendezvous_timeout
    engine: Engine | None = None

    def on_term(signum: int, frame: object) -> None:
        if engine is None:  # nothing to wind down before the group is up
            os._exit(0)
        engine.stopping.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        publish_health(env, state, metrics, progress, {**identity, "node_rank": str(pod.node_rank)})
    except OSError as e:
        return fail(state, f"cannot serve health on {pod.bind_address}:{pod.health_port}: {e}")
    api = None
    if env.rank == 0:
        try:
            key = read_api_key(Path(pod.api_key_file)) if pod.api_key_file else None
        except (OSError, ValueError) as e:  # the message names the file, never the key
            return fail(state, f"{BLOOM_API_KEY_FILE}: {e}", 2)
        api = Api(state, metrics, Limits(request_timeout_s=pod.request_timeout), api_key=key, debug=debug_api())
        try:
            start_api_server(pod.bind_address, pod.http_port, api)
        except OSError as e:
            return fail(state, f"cannot serve the API on {pod.bind_address}:{pod.http_port}: {e}")
    try:
        device = select_device(env.local_rank)
        engine_config = parse_engine_env()
    except ValueError as e:  # EnvError is one
        return fail(state, str(e), 2)

    state.set(phase="loading")
    t0 = time.monotonic()
    try:
        shard = load_shard(pod.model_dir, env.rank, env.world_size)
    except ShardError as e:
        return fail(state, str(e))
    metrics.set("bloom_worker_shard_load_seconds", time.monotonic() - t0)
    metrics.set("bloom_worker_shard_bytes", float(shard.nbytes))
    log.info("shard %s verified and mapped in %.2fs", shard.path, time.monotonic() - t0)

    state.set(shard_loaded=True, phase="rendezvous")
    try:
        rendezvous(env, deadline, backend_for(device))
    except RendezvousError as e:
        return fail(state, str(e))
    comm = Comm(env.rank, env.world_size, dist.is_initialized(), progress)
    model = BloomTP(shard, comm, device, max_context=engine_config.max_context)
    engine = Engine(model, metrics, engine_config, progress=progress)
    if api is not None:
        api.attach(engine, Model.serving(pod.deployment, engine, shard.manifest, Path(pod.model_dir), api.limits))
    state.set(communicator_up=True, phase="ready")
    log.info("ready (group %s, epoch %s, %s)", pod.group, pod.epoch, device)
    try:
        if env.rank == 0:
            engine.run_leader()
        else:
            engine.run_follower()
    except Exception as e:  # noqa: BLE001  # a broken peer or communicator: the group must be recreated
        if engine.stopping.is_set():
            log.info("stopped (a peer left first: %s)", str(e).splitlines()[0][:200])
            return 0
        return fail(state, f"tensor-parallel group failed: {e}")
    log.info("stopped")
    return 0
