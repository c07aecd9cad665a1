"""The worker reads exactly the names of contract/env.json, and names the variable in every error."""

from __future__ import annotations

import subprocess

import pytest

from bloom_worker import env as envmod
from bloom_worker.rendezvous import store_bind_address
from worker_helpers import BIN, CONTRACT


def pod() -> dict[str, str]:
    """Pod 1 of a 2-pod group of 4 ranks per pod."""
    return {
        "WORLD_SIZE": "8",
        "NNODES": "2",
        "NODE_RANK": "1",
        "NPROC_PER_NODE": "4",
        "MASTER_ADDR": "g0-p0.tiny.default.svc.cluster.local",
        "MASTER_PORT": "29500",
        "BLOOM_DEPLOYMENT": "tiny",
        "BLOOM_MODEL_DIR": "/models/bloom",
        "BLOOM_TENSOR_PARALLEL_SIZE": "8",
        "BLOOM_GROUP": "3",
        "BLOOM_EPOCH": "7",
        "BLOOM_HTTP_PORT": "8080",
        "BLOOM_HEALTH_PORT": "8081",
        "BLOOM_RENDEZVOUS_TIMEOUT": "300",
        "BLOOM_TERMINATION_GRACE_SECONDS": "30",
    }


def rank() -> dict[str, str]:
    """Local rank 2 of that pod."""
    return {**pod(), "RANK": "6", "LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "4"}


def test_names_match_contract() -> None:
    assert set(envmod.TORCHRUN_NAMES) == set(CONTRACT["torchrun"])
    assert set(envmod.TORCHRUN_DEFAULT_NAMES) == set(CONTRACT["torchrunDefaults"])
    assert set(envmod.PROCESS_NAMES) == set(CONTRACT["process"])
    assert set(envmod.BLOOM_NAMES) == set(CONTRACT["bloom"])
    assert set(envmod.OPTIONAL_NAMES) == set(CONTRACT["optional"])
    assert set(pod()) == set(envmod.REQUIRED_NAMES)
    assert envmod.BLOOM_REPORT_FD not in envmod.BLOOM_NAMES, "internal, not the operator's"


def test_parse_pod() -> None:
    e = envmod.parse_pod_env({**pod(), "BLOOM_BIND_ADDRESS": "127.0.0.5", "NCCL_DEBUG": "INFO", "OTHER": "x"})
    assert (e.world_size, e.nnodes, e.node_rank, e.nproc_per_node) == (8, 2, 1, 4)
    assert (e.tensor_parallel_size, e.group, e.epoch) == (8, 3, "7")
    assert (e.master_addr, e.master_port, e.http_port, e.health_port) == (
        "g0-p0.tiny.default.svc.cluster.local",
        29500,
        8080,
        8081,
    )
    assert e.rendezvous_timeout == 300.0 and e.model_dir == "/models/bloom" and e.deployment == "tiny"
    assert e.bind_address == "127.0.0.5" and e.nccl == {"NCCL_DEBUG": "INFO"}
    assert [e.rank_of(lr) for lr in range(4)] == [4, 5, 6, 7]
    assert envmod.parse_pod_env(pod()).bind_address == "0.0.0.0"
    assert not envmod.is_rank_process(pod())


def test_probe_bounds_are_optional_with_defaults() -> None:
    e = envmod.parse_pod_env(pod())
    assert (e.liveness_timeout, e.readiness_timeout) == (90.0, 10.0)
    set_ = {"BLOOM_LIVENESS_TIMEOUT_SECONDS": "120", "BLOOM_READINESS_TIMEOUT_SECONDS": "2.5"}
    e = envmod.parse_pod_env({**pod(), **set_})
    assert (e.liveness_timeout, e.readiness_timeout) == (120.0, 2.5)
    assert envmod.parse_pod_env({**pod(), "BLOOM_LIVENESS_TIMEOUT_SECONDS": " "}).liveness_timeout == 90.0


def test_api_options_are_optional_with_defaults() -> None:
    e = envmod.parse_pod_env(pod())
    assert (e.api_key_file, e.request_timeout) == (None, 600.0)
    set_ = {"BLOOM_API_KEY_FILE": " /run/key ", "BLOOM_REQUEST_TIMEOUT_SECONDS": "30"}
    e = envmod.parse_pod_env({**pod(), **set_})
    assert (e.api_key_file, e.request_timeout) == ("/run/key", 30.0)


@pytest.mark.parametrize(
    "name", ["BLOOM_LIVENESS_TIMEOUT_SECONDS", "BLOOM_READINESS_TIMEOUT_SECONDS", "BLOOM_REQUEST_TIMEOUT_SECONDS"]
)
@pytest.mark.parametrize("value", ["0", "-5", "soon", "inf", "nan"])
def test_bad_probe_bounds_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(envmod.EnvError, match=name):
        envmod.parse_pod_env({**pod(), name: value})


def test_parse_rank() -> None:
    e = envmod.parse_rank_env({**rank(), "BLOOM_REPORT_FD": "5"})
    assert (e.rank, e.local_rank, e.local_world_size, e.world_size) == (6, 2, 4, 8)
    assert e.pod == envmod.parse_pod_env(pod()) and e.report_fd == 5 and not e.agent_store
    torchrun = envmod.parse_rank_env({**rank(), "TORCHELASTIC_USE_AGENT_STORE": "True"})
    assert torchrun.report_fd is None and torchrun.agent_store
    assert envmod.is_rank_process(rank()) and envmod.is_rank_process({"LOCAL_RANK": "0"})


def test_store_binds_the_loopback_master_only() -> None:
    single = {**rank(), "WORLD_SIZE": "4", "NNODES": "1", "NODE_RANK": "0", "BLOOM_TENSOR_PARALLEL_SIZE": "4"}
    single |= {"RANK": "2", "MASTER_ADDR": "127.0.0.1"}
    assert store_bind_address(envmod.parse_rank_env(single)) == "127.0.0.1"
    assert store_bind_address(envmod.parse_rank_env({**rank(), "BLOOM_BIND_ADDRESS": "10.0.0.4"})) == "10.0.0.4"


@pytest.mark.parametrize(
    ("parse", "full", "name"),
    [(envmod.parse_pod_env, pod, n) for n in sorted(pod())]
    + [(envmod.parse_rank_env, rank, n) for n in sorted(rank())],
)
def test_every_name_is_required(parse, full, name: str) -> None:
    """In the launcher (pod variables) and in a rank (pod and process variables)."""
    env = full()
    del env[name]
    with pytest.raises(envmod.EnvError, match=name):
        parse(env)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WORLD_SIZE", "0"),
        ("WORLD_SIZE", "6"),  # != NNODES * NPROC_PER_NODE
        ("NNODES", "x"),
        ("NODE_RANK", "2"),  # >= NNODES
        ("NODE_RANK", "-1"),
        ("NPROC_PER_NODE", "0"),
        ("MASTER_PORT", "70000"),
        ("BLOOM_HTTP_PORT", "-1"),
        ("BLOOM_TENSOR_PARALLEL_SIZE", "4"),
        ("BLOOM_RENDEZVOUS_TIMEOUT", "soon"),
        ("BLOOM_RENDEZVOUS_TIMEOUT", "0"),
        ("BLOOM_GROUP", "-2"),
        ("PET_NNODES", "1"),
        ("PET_NODE_RANK", "0"),
        ("PET_NPROC_PER_NODE", "8"),
        ("PET_MASTER_ADDR", "127.0.0.1"),
        ("PET_MASTER_PORT", "29501"),
    ],
)
def test_bad_pod_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(envmod.EnvError, match=name):
        envmod.parse_pod_env({**pod(), name: value})


def test_agreeing_torchrun_defaults_are_accepted() -> None:
    mirrors = {n: pod()[n.removeprefix("PET_")] for n in envmod.TORCHRUN_DEFAULT_NAMES}
    assert envmod.parse_pod_env({**pod(), **mirrors}) == envmod.parse_pod_env(pod())


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RANK", "x"),
        ("RANK", "2"),  # != NODE_RANK * NPROC_PER_NODE + LOCAL_RANK
        ("RANK", "7"),
        ("LOCAL_RANK", "4"),  # >= NPROC_PER_NODE
        ("LOCAL_RANK", "-1"),
        ("LOCAL_WORLD_SIZE", "8"),  # != NPROC_PER_NODE
    ],
)
def test_bad_rank_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(envmod.EnvError, match=name):
        envmod.parse_rank_env({**rank(), name: value})


@pytest.mark.parametrize(("env", "missing"), [(pod(), "BLOOM_EPOCH"), (rank(), "LOCAL_WORLD_SIZE")])
def test_worker_exits_2_naming_a_missing_variable(env: dict[str, str], missing: str) -> None:
    """In launcher mode (no process variables) and in rank mode."""
    env = {k: v for k, v in env.items() if k != missing}
    p = subprocess.run([str(BIN / "bloom-worker")], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    assert missing in p.stderr
