"""The worker reads exactly the names of contract/env.json, and names the variable in every error."""

from __future__ import annotations

import subprocess

import pytest

from bloom_worker import env as envmod
from worker_helpers import BIN, CONTRACT


def valid() -> dict[str, str]:
    return {
        "RANK": "1",
        "WORLD_SIZE": "8",
        "LOCAL_RANK": "0",
        "LOCAL_WORLD_SIZE": "1",
        "MASTER_ADDR": "g0-r0.tiny.default.svc.cluster.local",
        "MASTER_PORT": "29500",
        "BLOOM_DEPLOYMENT": "tiny",
        "BLOOM_MODEL_DIR": "/models/bloom",
        "BLOOM_TENSOR_PARALLEL_SIZE": "8",
        "BLOOM_GROUP": "3",
        "BLOOM_EPOCH": "7",
        "BLOOM_HTTP_PORT": "8080",
        "BLOOM_HEALTH_PORT": "8081",
        "BLOOM_RENDEZVOUS_TIMEOUT": "300",
    }


def test_names_match_contract() -> None:
    assert set(envmod.TORCHRUN_NAMES) == set(CONTRACT["torchrun"])
    assert set(envmod.BLOOM_NAMES) == set(CONTRACT["bloom"])
    assert set(envmod.OPTIONAL_NAMES) == set(CONTRACT["optional"])
    assert set(valid()) == set(envmod.REQUIRED_NAMES)


def test_parse_valid() -> None:
    e = envmod.parse_env({**valid(), "BLOOM_BIND_ADDRESS": "127.0.0.5", "NCCL_DEBUG": "INFO", "OTHER": "x"})
    assert (e.rank, e.world_size, e.tensor_parallel_size, e.group, e.epoch) == (1, 8, 8, 3, "7")
    assert (e.master_addr, e.master_port, e.http_port, e.health_port) == (
        "g0-r0.tiny.default.svc.cluster.local",
        29500,
        8080,
        8081,
    )
    assert e.rendezvous_timeout == 300.0 and e.model_dir == "/models/bloom" and e.deployment == "tiny"
    assert e.bind_address == "127.0.0.5" and e.nccl == {"NCCL_DEBUG": "INFO"}
    assert envmod.parse_env(valid()).bind_address == "0.0.0.0"


@pytest.mark.parametrize("name", sorted(valid()))
def test_every_required_name_is_required(name: str) -> None:
    env = valid()
    del env[name]
    with pytest.raises(envmod.EnvError, match=name):
        envmod.parse_env(env)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RANK", "x"),
        ("RANK", "8"),
        ("WORLD_SIZE", "0"),
        ("MASTER_PORT", "70000"),
        ("BLOOM_HTTP_PORT", "-1"),
        ("BLOOM_TENSOR_PARALLEL_SIZE", "4"),
        ("BLOOM_RENDEZVOUS_TIMEOUT", "soon"),
        ("BLOOM_RENDEZVOUS_TIMEOUT", "0"),
        ("BLOOM_GROUP", "-2"),
    ],
)
def test_malformed_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(envmod.EnvError, match=name):
        envmod.parse_env({**valid(), name: value})


def test_worker_exits_2_naming_a_missing_variable() -> None:
    env = {k: v for k, v in valid().items() if k != "BLOOM_EPOCH"}
    p = subprocess.run([str(BIN / "bloom-worker")], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert "BLOOM_EPOCH" in p.stderr
