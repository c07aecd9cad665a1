"""The env contract (contract/env.json), read side: the one place the worker names its variables.

The operator writes these variables into every rank pod; the worker is configured by them and
nothing else. `parse_env` turns them into a typed `WorkerEnv` and names the variable in every error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

# torchrun / DeepSpeed names (any engine that follows that convention can run in the pods)
RANK = "RANK"
WORLD_SIZE = "WORLD_SIZE"
LOCAL_RANK = "LOCAL_RANK"
LOCAL_WORLD_SIZE = "LOCAL_WORLD_SIZE"
MASTER_ADDR = "MASTER_ADDR"
MASTER_PORT = "MASTER_PORT"
TORCHRUN_NAMES = (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT)

# the project's own names
BLOOM_DEPLOYMENT = "BLOOM_DEPLOYMENT"
BLOOM_MODEL_DIR = "BLOOM_MODEL_DIR"
BLOOM_TENSOR_PARALLEL_SIZE = "BLOOM_TENSOR_PARALLEL_SIZE"
BLOOM_GROUP = "BLOOM_GROUP"
BLOOM_EPOCH = "BLOOM_EPOCH"
BLOOM_HTTP_PORT = "BLOOM_HTTP_PORT"
BLOOM_HEALTH_PORT = "BLOOM_HEALTH_PORT"
BLOOM_RENDEZVOUS_TIMEOUT = "BLOOM_RENDEZVOUS_TIMEOUT"
BLOOM_NAMES = (
    BLOOM_DEPLOYMENT,
    BLOOM_MODEL_DIR,
    BLOOM_TENSOR_PARALLEL_SIZE,
    BLOOM_GROUP,
    BLOOM_EPOCH,
    BLOOM_HTTP_PORT,
    BLOOM_HEALTH_PORT,
    BLOOM_RENDEZVOUS_TIMEOUT,
)

# optional
BLOOM_BIND_ADDRESS = "BLOOM_BIND_ADDRESS"
NCCL_PREFIX = "NCCL_"
OPTIONAL_NAMES = (BLOOM_BIND_ADDRESS, NCCL_PREFIX + "*")

REQUIRED_NAMES = TORCHRUN_NAMES + BLOOM_NAMES


class EnvError(ValueError):
    """A missing or malformed contract variable; the message names it."""


@dataclass(frozen=True)
class WorkerEnv:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    master_addr: str
    master_port: int
    deployment: str
    model_dir: str
    tensor_parallel_size: int
    group: int
    epoch: str
    http_port: int
    health_port: int
    rendezvous_timeout: float
    bind_address: str = "0.0.0.0"
    nccl: dict[str, str] = field(default_factory=dict)


def _get(env: Mapping[str, str], name: str) -> str:
    value = env.get(name)
    if value is None or value.strip() == "":
        raise EnvError(f"{name} is not set (required by the env contract)")
    return value.strip()


def _int(env: Mapping[str, str], name: str, lo: int, hi: int | None = None) -> int:
    raw = _get(env, name)
    try:
        value = int(raw)
    except ValueError:
        raise EnvError(f"{name}={raw!r} is not an integer") from None
    if value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise EnvError(f"{name}={value} must be {bound}")
    return value


def _port(env: Mapping[str, str], name: str) -> int:
    return _int(env, name, 1, 65535)


def parse_env(env: Mapping[str, str] | None = None) -> WorkerEnv:
    env = os.environ if env is None else env
    world = _int(env, WORLD_SIZE, 1)
    rank = _int(env, RANK, 0)
    if rank >= world:
        raise EnvError(f"{RANK}={rank} must be < {WORLD_SIZE}={world}")
    tp = _int(env, BLOOM_TENSOR_PARALLEL_SIZE, 1)
    if tp != world:
        raise EnvError(f"{BLOOM_TENSOR_PARALLEL_SIZE}={tp} differs from {WORLD_SIZE}={world}")
    raw_timeout = _get(env, BLOOM_RENDEZVOUS_TIMEOUT)
    try:
        timeout = float(raw_timeout)
    except ValueError:
        raise EnvError(f"{BLOOM_RENDEZVOUS_TIMEOUT}={raw_timeout!r} is not a number of seconds") from None
    if not timeout > 0:
        raise EnvError(f"{BLOOM_RENDEZVOUS_TIMEOUT}={raw_timeout} must be > 0 seconds")
    return WorkerEnv(
        rank=rank,
        world_size=world,
        local_rank=_int(env, LOCAL_RANK, 0),
        local_world_size=_int(env, LOCAL_WORLD_SIZE, 1),
        master_addr=_get(env, MASTER_ADDR),
        master_port=_port(env, MASTER_PORT),
        deployment=_get(env, BLOOM_DEPLOYMENT),
        model_dir=_get(env, BLOOM_MODEL_DIR),
        tensor_parallel_size=tp,
        group=_int(env, BLOOM_GROUP, 0),
        epoch=_get(env, BLOOM_EPOCH),
        http_port=_port(env, BLOOM_HTTP_PORT),
        health_port=_port(env, BLOOM_HEALTH_PORT),
        rendezvous_timeout=timeout,
        bind_address=(env.get(BLOOM_BIND_ADDRESS) or "0.0.0.0").strip(),
        nccl={k: v for k, v in env.items() if k.startswith(NCCL_PREFIX)},
    )
