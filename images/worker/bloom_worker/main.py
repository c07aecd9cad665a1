"""`bloom-worker`: the rank pods' entrypoint, configured only by the env contract (env.py).

health server up (live) -> load and verify the shard -> rendezvous (deadline, epoch check) ->
ready -> rank 0 serves the API and leads batches, the other ranks follow.
Exit codes: 0 on a clean stop, 2 for a bad environment, 1 for any other failure.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

import torch

from . import env as envmod
from .engine import Engine
from .health import State, start_health_server
from .loader import ShardError, load_shard
from .metrics import Metrics
from .model import BloomTP, Comm
from .rendezvous import RendezvousError, rendezvous
from .server import Api, Limits, start_api_server
from .tokenizer import load_tokenizer

log = logging.getLogger("bloom_worker")


def fail(state: State, message: str, code: int = 1) -> int:
    state.set(error=message, phase="failed")
    log.error("%s", message)
    print(f"bloom-worker: error: {message}", file=sys.stderr, flush=True)
    return code


def run() -> int:
    try:
        env = envmod.parse_env()
    except envmod.EnvError as e:
        print(f"bloom-worker: error: {e}", file=sys.stderr, flush=True)
        return 2
    logging.basicConfig(
        level=os.environ.get("BLOOM_LOG_LEVEL", "INFO"),
        format=f"%(asctime)s rank{env.rank}/{env.world_size} %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    state, metrics = State(), Metrics()
    identity = {
        "deployment": env.deployment,
        "group": str(env.group),
        "epoch": env.epoch,
        "rank": str(env.rank),
        "world_size": str(env.world_size),
    }
    metrics.set("bloom_worker_info", 1.0, identity)
    deadline = time.monotonic() + env.rendezvous_timeout
    try:
        start_health_server(env.bind_address, env.health_port, state, metrics, identity)
    except OSError as e:
        return fail(state, f"cannot serve health on {env.bind_address}:{env.health_port}: {e}")
    api = None
    if env.rank == 0:
        api = Api(state, metrics, env.deployment, 0, Limits())
        try:
            start_api_server(env.bind_address, env.http_port, api)
        except OSError as e:
            return fail(state, f"cannot serve the API on {env.bind_address}:{env.http_port}: {e}")

    state.set(phase="loading")
    t0 = time.monotonic()
    try:
        shard = load_shard(env.model_dir, env.rank, env.world_size)
    except ShardError as e:
        return fail(state, str(e))
    metrics.set("bloom_worker_shard_load_seconds", time.monotonic() - t0)
    metrics.set("bloom_worker_shard_bytes", float(shard.nbytes))
    log.info("shard %s verified and mapped in %.2fs", shard.path, time.monotonic() - t0)

    cuda = torch.cuda.is_available()
    device = torch.device("cuda", env.local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    state.set(shard_loaded=True, phase="rendezvous")
    try:
        rendezvous(env, deadline, "nccl" if cuda else "gloo")
    except RendezvousError as e:
        return fail(state, str(e))
    comm = Comm(env.rank, env.world_size)
    model = BloomTP(shard, comm, device)
    engine = Engine(model, metrics)

    def on_term(signum: int, frame: object) -> None:
        engine.stopping.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    if api is not None:
        api.vocab_size = model.cfg.vocab_size
        api.tokenizer = load_tokenizer(Path(env.model_dir)) if shard.manifest.tokenizer else None
        api.engine = engine
    state.set(communicator_up=True, phase="ready")
    log.info("ready (group %s, epoch %s)", env.group, env.epoch)
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


def main() -> None:
    try:
        code = run()
    except Exception as e:  # noqa: BLE001
        logging.getLogger("bloom_worker").exception("unexpected failure")
        print(f"bloom-worker: error: {e}", file=sys.stderr, flush=True)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # skip interpreter teardown: communicator threads must not hold a dying process up
    os._exit(code)


if __name__ == "__main__":
    main()
