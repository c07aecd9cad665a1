"""Bad shards, wrong rank counts, mismatched epochs and unreachable masters fail fast, clearly, non-zero.

Here every pod holds one rank (NPROC_PER_NODE=1), so a pod index is also a rank; test_launcher.py covers
pods of several ranks."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import requests

from bloom_worker.loader import ShardError, load_shard
from worker_helpers import alive, free_port


def copy_shards(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_loader_refusals(shards_a: dict[int, Path], tmp_path: Path) -> None:
    d = copy_shards(shards_a[2], tmp_path / "s")
    with pytest.raises(ShardError, match="tensor-parallel size 2, but the world size is 4"):
        load_shard(d, 0, 4)
    f = d / "rank-01-of-02.safetensors"
    data = bytearray(f.read_bytes())
    data[-100] ^= 0xFF
    f.write_bytes(bytes(data))
    load_shard(d, 0, 2)  # rank 0's file is intact
    with pytest.raises(ShardError, match=r"rank-01-of-02\.safetensors: xxh3_128 .* \(corrupt shard\)"):
        load_shard(d, 1, 2)
    f.write_bytes(bytes(data[:-10]))
    with pytest.raises(ShardError, match=r"rank-01-of-02\.safetensors: size is \d+ bytes, manifest says"):
        load_shard(d, 1, 2)
    (d / "rank-01-of-02.safetensors").unlink()
    with pytest.raises(ShardError, match="shard file of rank 1 not found"):
        load_shard(d, 1, 2)
    with pytest.raises(ShardError, match="manifest not found"):
        load_shard(tmp_path, 0, 1)


def test_loader_checks_dtypes_and_shapes(shards_a: dict[int, Path], tmp_path: Path) -> None:
    d = copy_shards(shards_a[1], tmp_path / "s")
    m = (d / "bloom-manifest.json").read_text()
    (d / "bloom-manifest.json").write_text(m.replace('"dtype": "float16"', '"dtype": "bfloat16"', 1))
    with pytest.raises(ShardError, match=r"bloom-manifest\.json: entry .* implies bfloat16"):
        load_shard(d, 0, 1)


def test_corrupt_shard_fails_fast(shards_a: dict[int, Path], tmp_path: Path, spawn) -> None:
    d = copy_shards(shards_a[2], tmp_path / "s")
    f = d / "rank-01-of-02.safetensors"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))
    g = spawn(d, 2, timeout=30)
    t0 = time.monotonic()
    assert g.wait_exit(1, 30) == 1
    assert time.monotonic() - t0 < 25, "must fail before the rendezvous deadline"
    out = g.pods[1].output()
    assert "rank-01-of-02.safetensors" in out and "corrupt shard" in out


def test_wrong_rank_count_fails_fast(shards_a: dict[int, Path], spawn) -> None:
    g = spawn(shards_a[2], 4, pods=[3], timeout=30)
    assert g.wait_exit(0, 30) == 1
    assert "shards are for tensor-parallel size 2, but the world size is 4" in g.pods[0].output()


def test_mismatched_epoch_is_refused(shards_a: dict[int, Path], spawn) -> None:
    g = spawn(shards_a[2], 2, timeout=6, overrides={1: {"BLOOM_EPOCH": "4"}}, epoch="5")
    assert g.wait_exit(1, 30) == 1
    assert "epoch mismatch: this rank has BLOOM_EPOCH=4 but rank 0" in g.pods[1].output()
    assert "has BLOOM_EPOCH=5" in g.pods[1].output()
    # rank 0 stays live but never ready while it waits, then gives up at the deadline
    r0 = g.pods[0]
    assert requests.get(r0.url("/healthz"), timeout=5).status_code == 200
    ready = requests.get(r0.url("/readyz"), timeout=5)
    [rank0] = ready.json()["ranks"]
    assert ready.status_code == 503 and rank0["phase"] == "rendezvous" and rank0["shard_loaded"]
    assert requests.post(g.api("/generate"), json={"input_ids": [1], "max_new_tokens": 1}, timeout=5).status_code == 503
    assert g.wait_exit(0, 30) == 1
    assert "ranks [1] of epoch 5 did not join before the rendezvous deadline" in r0.output()


@pytest.mark.parametrize("master", ["127.0.0.1", "no-such-master.invalid"])
def test_unreachable_master_fails_at_the_deadline(master: str, shards_a: dict[int, Path], spawn) -> None:
    port = free_port()
    g = spawn(shards_a[2], 2, pods=[1], timeout=3, overrides={1: {"MASTER_ADDR": master, "MASTER_PORT": str(port)}})
    t0 = time.monotonic()
    assert g.wait_exit(0, 40) == 1
    assert time.monotonic() - t0 < 30
    out = g.pods[0].output()
    if master == "127.0.0.1":
        assert f"master 127.0.0.1:{port} (127.0.0.1) did not accept connections before the rendezvous deadline" in out
    else:
        assert "MASTER_ADDR no-such-master.invalid did not resolve before the rendezvous deadline" in out


def test_dead_peer_takes_the_group_down(shards_a: dict[int, Path], spawn) -> None:
    """SIGKILL to pod 1's launcher: its rank dies with it (PR_SET_PDEATHSIG), pod 0's rank fails."""
    g = spawn(shards_a[2], 2).wait_ready(120)
    [orphan] = g.pods[1].rank_pids()
    g.pods[1].proc.kill()
    assert g.wait_exit(0, 30) == 1
    assert "tensor-parallel group failed" in g.pods[0].output()
    assert not alive(orphan)


def test_sigterm_stops_the_group_cleanly(shards_a: dict[int, Path], spawn) -> None:
    g = spawn(shards_a[2], 2).wait_ready(120)
    pids = [pid for p in g.pods for pid in p.rank_pids()]
    g.stop()
    assert [p.proc.returncode for p in g.pods] == [0, 0], [p.output()[-500:] for p in g.pods]
    assert not any(alive(pid) for pid in pids)
