"""The env contract (contract/env.json), read side: the one place the worker names its variables.

The operator writes the pod-level variables ('torchrun', 'torchrunDefaults', 'bloom') into every pod of
a group; the pod's launcher sets the 'process' variables in each rank process. `parse_pod_env` and
`parse_rank_env` turn them into typed values and name the variable in every error.

The PET_* mirrors exist for torchrun, which reads them as the defaults of its flags. The worker does not
need them, but when one is set it must agree with the variable it mirrors: a pod whose torchrun would
join another group than bloom-worker is refused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .engine_config import EngineConfig, SchedulerConfig

# pod level, torchrun's names (contract 'torchrun')
WORLD_SIZE = "WORLD_SIZE"
NNODES = "NNODES"
NODE_RANK = "NODE_RANK"
NPROC_PER_NODE = "NPROC_PER_NODE"
MASTER_ADDR = "MASTER_ADDR"
MASTER_PORT = "MASTER_PORT"
TORCHRUN_NAMES = (WORLD_SIZE, NNODES, NODE_RANK, NPROC_PER_NODE, MASTER_ADDR, MASTER_PORT)

# torchrun's flag defaults (contract 'torchrunDefaults'): PET_<name> mirrors <name>
PET_PREFIX = "PET_"
TORCHRUN_DEFAULT_NAMES = tuple(PET_PREFIX + n for n in (NNODES, NODE_RANK, NPROC_PER_NODE, MASTER_ADDR, MASTER_PORT))

# per rank process, set by the launcher (contract 'process')
RANK = "RANK"
LOCAL_RANK = "LOCAL_RANK"
LOCAL_WORLD_SIZE = "LOCAL_WORLD_SIZE"
PROCESS_NAMES = (RANK, LOCAL_RANK, LOCAL_WORLD_SIZE)

# the project's own names (contract 'bloom')
BLOOM_DEPLOYMENT = "BLOOM_DEPLOYMENT"
BLOOM_MODEL_DIR = "BLOOM_MODEL_DIR"
BLOOM_TENSOR_PARALLEL_SIZE = "BLOOM_TENSOR_PARALLEL_SIZE"
BLOOM_GROUP = "BLOOM_GROUP"
BLOOM_EPOCH = "BLOOM_EPOCH"
BLOOM_HTTP_PORT = "BLOOM_HTTP_PORT"
BLOOM_HEALTH_PORT = "BLOOM_HEALTH_PORT"
BLOOM_RENDEZVOUS_TIMEOUT = "BLOOM_RENDEZVOUS_TIMEOUT"
BLOOM_TERMINATION_GRACE_SECONDS = "BLOOM_TERMINATION_GRACE_SECONDS"
BLOOM_NAMES = (
    BLOOM_DEPLOYMENT,
    BLOOM_MODEL_DIR,
    BLOOM_TENSOR_PARALLEL_SIZE,
    BLOOM_GROUP,
    BLOOM_EPOCH,
    BLOOM_HTTP_PORT,
    BLOOM_HEALTH_PORT,
    BLOOM_RENDEZVOUS_TIMEOUT,
    BLOOM_TERMINATION_GRACE_SECONDS,
)

# optional
BLOOM_BIND_ADDRESS = "BLOOM_BIND_ADDRESS"
BLOOM_LIVENESS_TIMEOUT_SECONDS = "BLOOM_LIVENESS_TIMEOUT_SECONDS"
BLOOM_READINESS_TIMEOUT_SECONDS = "BLOOM_READINESS_TIMEOUT_SECONDS"
BLOOM_API_KEY_FILE = "BLOOM_API_KEY_FILE"
BLOOM_REQUEST_TIMEOUT_SECONDS = "BLOOM_REQUEST_TIMEOUT_SECONDS"
NCCL_PREFIX = "NCCL_"
# the engine's tuning (engine_config.py)
BLOOM_MAX_CONTEXT = "BLOOM_MAX_CONTEXT"
BLOOM_MAX_RUNNING_REQUESTS = "BLOOM_MAX_RUNNING_REQUESTS"
BLOOM_MAX_WAITING_REQUESTS = "BLOOM_MAX_WAITING_REQUESTS"
BLOOM_PREFILL_CHUNK_TOKENS = "BLOOM_PREFILL_CHUNK_TOKENS"
BLOOM_KV_BLOCK_SIZE = "BLOOM_KV_BLOCK_SIZE"
BLOOM_KV_CACHE_TOKENS = "BLOOM_KV_CACHE_TOKENS"
BLOOM_GPU_MEMORY_UTILIZATION = "BLOOM_GPU_MEMORY_UTILIZATION"
# test-only hooks, off unless BLOOM_DEBUG_API=1
BLOOM_DEBUG_API = "BLOOM_DEBUG_API"
BLOOM_DEBUG_FAIL_PASS_TOKENS = "BLOOM_DEBUG_FAIL_PASS_TOKENS"
ENGINE_NAMES = (
    BLOOM_MAX_CONTEXT,
    BLOOM_MAX_RUNNING_REQUESTS,
    BLOOM_MAX_WAITING_REQUESTS,
    BLOOM_PREFILL_CHUNK_TOKENS,
    BLOOM_KV_BLOCK_SIZE,
    BLOOM_KV_CACHE_TOKENS,
    BLOOM_GPU_MEMORY_UTILIZATION,
    BLOOM_DEBUG_API,
    BLOOM_DEBUG_FAIL_PASS_TOKENS,
)
OPTIONAL_NAMES = (
    BLOOM_BIND_ADDRESS,
    BLOOM_LIVENESS_TIMEOUT_SECONDS,
    BLOOM_READINESS_TIMEOUT_SECONDS,
    BLOOM_API_KEY_FILE,
    BLOOM_REQUEST_TIMEOUT_SECONDS,
    *ENGINE_NAMES,
    NCCL_PREFIX + "*",
)
DEFAULT_LIVENESS_TIMEOUT = 90.0
DEFAULT_READINESS_TIMEOUT = 10.0
DEFAULT_REQUEST_TIMEOUT = 600.0

# what the operator must write into every pod
REQUIRED_NAMES = TORCHRUN_NAMES + BLOOM_NAMES

# internal, not in the contract: bloom-worker's launcher passes each of its ranks the write end of a
# pipe on which the rank reports its state (BLOOM_ is the project's prefix, users do not set it)
BLOOM_REPORT_FD = "BLOOM_REPORT_FD"
# torchrun's own: its agent already serves the store on MASTER_PORT, so rank 0 must not
TORCHELASTIC_USE_AGENT_STORE = "TORCHELASTIC_USE_AGENT_STORE"


class EnvError(ValueError):
    """A missing, malformed or inconsistent contract variable; the message names it."""


@dataclass(frozen=True)
class PodEnv:
    world_size: int
    nnodes: int
    node_rank: int
    nproc_per_node: int
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
    termination_grace: int
    bind_address: str = "0.0.0.0"
    nccl: dict[str, str] = field(default_factory=dict)
    liveness_timeout: float = DEFAULT_LIVENESS_TIMEOUT
    readiness_timeout: float = DEFAULT_READINESS_TIMEOUT
    api_key_file: str | None = None  # rank 0's API needs `Authorization: Bearer <the file's key>`
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT

    def rank_of(self, local_rank: int) -> int:
        return self.node_rank * self.nproc_per_node + local_rank


@dataclass(frozen=True)
class RankEnv:
    pod: PodEnv
    rank: int
    local_rank: int
    local_world_size: int
    report_fd: int | None = None  # set when bloom-worker's launcher started this process
    agent_store: bool = False  # torchrun's agent serves the rendezvous store

    @property
    def world_size(self) -> int:
        return self.pod.world_size


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


def _timeout(env: Mapping[str, str], name: str = BLOOM_RENDEZVOUS_TIMEOUT, default: float | None = None) -> float:
    if default is not None and (env.get(name) or "").strip() == "":
        return default
    raw = _get(env, name)
    try:
        timeout = float(raw)
    except ValueError:
        raise EnvError(f"{name}={raw!r} is not a number of seconds") from None
    if not timeout > 0 or timeout == float("inf"):
        raise EnvError(f"{name}={raw} must be a finite number of seconds > 0")
    return timeout


def is_rank_process(env: Mapping[str, str] | None = None) -> bool:
    """A launcher (ours or torchrun) set the per-process variables: run one rank, not a launcher."""
    env = os.environ if env is None else env
    return RANK in env or LOCAL_RANK in env


def parse_pod_env(env: Mapping[str, str] | None = None) -> PodEnv:
    env = os.environ if env is None else env
    world = _int(env, WORLD_SIZE, 1)
    nnodes = _int(env, NNODES, 1)
    nproc = _int(env, NPROC_PER_NODE, 1)
    if world != nnodes * nproc:
        raise EnvError(f"{WORLD_SIZE}={world} differs from {NNODES}={nnodes} * {NPROC_PER_NODE}={nproc}")
    node_rank = _int(env, NODE_RANK, 0)
    if node_rank >= nnodes:
        raise EnvError(f"{NODE_RANK}={node_rank} must be < {NNODES}={nnodes}")
    tp = _int(env, BLOOM_TENSOR_PARALLEL_SIZE, 1)
    if tp != world:
        raise EnvError(f"{BLOOM_TENSOR_PARALLEL_SIZE}={tp} differs from {WORLD_SIZE}={world}")
    for pet in TORCHRUN_DEFAULT_NAMES:
        mirrored = pet.removeprefix(PET_PREFIX)
        if pet in env and env[pet].strip() != env[mirrored].strip():
            raise EnvError(f"{pet}={env[pet]!r} differs from {mirrored}={env[mirrored]!r}")
    return PodEnv(
        world_size=world,
        nnodes=nnodes,
        node_rank=node_rank,
        nproc_per_node=nproc,
        master_addr=_get(env, MASTER_ADDR),
        master_port=_port(env, MASTER_PORT),
        deployment=_get(env, BLOOM_DEPLOYMENT),
        model_dir=_get(env, BLOOM_MODEL_DIR),
        tensor_parallel_size=tp,
        group=_int(env, BLOOM_GROUP, 0),
        epoch=_get(env, BLOOM_EPOCH),
        http_port=_port(env, BLOOM_HTTP_PORT),
        health_port=_port(env, BLOOM_HEALTH_PORT),
        rendezvous_timeout=_timeout(env),
        termination_grace=_int(env, BLOOM_TERMINATION_GRACE_SECONDS, 0),
        bind_address=(env.get(BLOOM_BIND_ADDRESS) or "0.0.0.0").strip(),
        nccl={k: v for k, v in env.items() if k.startswith(NCCL_PREFIX)},
        liveness_timeout=_timeout(env, BLOOM_LIVENESS_TIMEOUT_SECONDS, DEFAULT_LIVENESS_TIMEOUT),
        readiness_timeout=_timeout(env, BLOOM_READINESS_TIMEOUT_SECONDS, DEFAULT_READINESS_TIMEOUT),
        api_key_file=(env.get(BLOOM_API_KEY_FILE) or "").strip() or None,
        request_timeout=_timeout(env, BLOOM_REQUEST_TIMEOUT_SECONDS, DEFAULT_REQUEST_TIMEOUT),
    )


def parse_rank_env(env: Mapping[str, str] | None = None) -> RankEnv:
    env = os.environ if env is None else env
    pod = parse_pod_env(env)
    local_rank = _int(env, LOCAL_RANK, 0)
    if local_rank >= pod.nproc_per_node:
        raise EnvError(f"{LOCAL_RANK}={local_rank} must be < {NPROC_PER_NODE}={pod.nproc_per_node}")
    local_world = _int(env, LOCAL_WORLD_SIZE, 1)
    if local_world != pod.nproc_per_node:
        raise EnvError(f"{LOCAL_WORLD_SIZE}={local_world} differs from {NPROC_PER_NODE}={pod.nproc_per_node}")
    rank = _int(env, RANK, 0)
    if rank != pod.rank_of(local_rank):
        raise EnvError(
            f"{RANK}={rank} differs from {NODE_RANK}={pod.node_rank} * {NPROC_PER_NODE}={pod.nproc_per_node}"
            f" + {LOCAL_RANK}={local_rank}"
        )
    return RankEnv(
        pod=pod,
        rank=rank,
        local_rank=local_rank,
        local_world_size=local_world,
        report_fd=_int(env, BLOOM_REPORT_FD, 0) if env.get(BLOOM_REPORT_FD) else None,
        agent_store=env.get(TORCHELASTIC_USE_AGENT_STORE, "").strip().lower() == "true",
    )


def debug_api(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return env.get(BLOOM_DEBUG_API, "").strip() == "1"


def _fraction(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise EnvError(f"{name}={raw!r} is not a number") from None
    if not 0.0 < value <= 1.0:
        raise EnvError(f"{name}={raw} must be in (0, 1]")
    return value


def parse_engine_env(env: Mapping[str, str] | None = None) -> EngineConfig:
    """The engine's optional tuning; every unset variable keeps EngineConfig's default."""
    env = os.environ if env is None else env
    base, sched = EngineConfig(), SchedulerConfig()

    def opt(name: str, default: int, lo: int) -> int:
        return _int(env, name, lo) if env.get(name, "").strip() else default

    cache = _int(env, BLOOM_KV_CACHE_TOKENS, 1) if env.get(BLOOM_KV_CACHE_TOKENS, "").strip() else None
    fail = opt(BLOOM_DEBUG_FAIL_PASS_TOKENS, 0, 1) if debug_api(env) else 0
    return EngineConfig(
        scheduler=SchedulerConfig(
            max_running=opt(BLOOM_MAX_RUNNING_REQUESTS, sched.max_running, 1),
            max_waiting=opt(BLOOM_MAX_WAITING_REQUESTS, sched.max_waiting, 1),
            prefill_chunk=opt(BLOOM_PREFILL_CHUNK_TOKENS, sched.prefill_chunk, 16),
        ),
        block_size=opt(BLOOM_KV_BLOCK_SIZE, base.block_size, 1),
        kv_cache_tokens=cache,
        gpu_memory_utilization=_fraction(env, BLOOM_GPU_MEMORY_UTILIZATION, base.gpu_memory_utilization),
        max_context=opt(BLOOM_MAX_CONTEXT, base.max_context, 2),
        fail_pass_with_tokens=fail or None,
    )
