"""A foreign client of a group's store (MASTER_PORT: torch's TCPStore, without authentication) cannot make
the group join under a wrong epoch, nor hold it past its rendezvous deadline: garbage and idle connections
are ignored, a forged epoch fails the group at once with a message, a forged join ends at the deadline.

Real bloom-worker pods (a launcher and its rank process each, one rank per pod) on the loopback; the
foreign client is a raw socket or a TCPStore client of its own."""

from __future__ import annotations

import datetime
import os
import socket
import time
from pathlib import Path

import requests
import torch.distributed as dist

from worker_helpers import free_port


def foreign_store(port: int, wait_for: list[str] | None = None) -> dist.TCPStore:
    """A TCPStore client of the group's store (connects once rank 0 listens), after rank 0 published wait_for."""
    store = dist.TCPStore("127.0.0.1", port, None, False, datetime.timedelta(seconds=60))
    if wait_for:
        store.wait(wait_for, datetime.timedelta(seconds=60))
    return store


def test_garbage_and_idle_connections_do_not_stop_the_rendezvous(shards_a: dict[int, Path], spawn) -> None:
    port = free_port()
    g = spawn(shards_a[2], 2, pods=[0], timeout=60, master_port=port)
    foreign_store(port, ["bloom/epoch"])  # rank 0 serves and has published: the rendezvous is under way
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(16)]
    for payload in (
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        os.urandom(4096),
        b"\x00" * 256,
        b"\x01" + (2**62).to_bytes(8, "little"),
    ):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(payload)
    g.start(1)
    g.wait_ready(90)
    r = requests.post(g.api("/generate"), json={"input_ids": [5, 6, 7], "max_new_tokens": 3}, timeout=30)
    assert r.status_code == 200, r.text
    for s in idle:
        s.close()


def test_an_epoch_overwritten_during_the_rendezvous_fails_the_group_fast(shards_a: dict[int, Path], spawn) -> None:
    port = free_port()
    g = spawn(shards_a[2], 2, pods=[0], timeout=60, master_port=port, epoch="5")
    foreign_store(port, ["bloom/epoch"]).set("bloom/epoch", "4")
    t0 = time.monotonic()
    assert g.wait_exit(0, 30) == 1
    assert time.monotonic() - t0 < 15, "long before the 60 s deadline"
    out = g.pods[0].output()
    assert "bloom/epoch was overwritten with '4' by a foreign client of the store" in out, out[-2000:]
    assert "refusing to rendezvous" in out


def test_an_epoch_written_before_rank_0_publishes_fails_the_group_fast(shards_a: dict[int, Path], spawn) -> None:
    """Under torchrun rank 0 joins a store its agent serves: a foreign value there is seen, not trusted."""
    port = free_port()
    agent = dist.TCPStore("127.0.0.1", port, None, True, datetime.timedelta(seconds=60), wait_for_workers=False)
    foreign_store(port).set("bloom/epoch", "666")
    g = spawn(shards_a[2], 2, pods=[], timeout=60, master_port=port, epoch="3")
    g.envs[0]["TORCHELASTIC_USE_AGENT_STORE"] = "true"
    g.start(0)
    assert g.wait_exit(0, 60) == 1
    out = g.pods[0].output()
    assert "bloom/epoch is '666' in rank 0's store, written by a foreign client of the store" in out, out[-2000:]
    assert "not '3'; refusing to rendezvous" in out
    assert agent.get("bloom/epoch") == b"666", "rank 0 did not overwrite it to join anyway"


def test_a_forged_join_does_not_hold_rank_0_past_its_deadline(shards_a: dict[int, Path], spawn) -> None:
    """A forged joined key sends rank 0 into init_process_group for a rank that never comes; torch would
    wait its own timeout (60 s at least), the rendezvous deadline (10 s) ends it."""
    port = free_port()
    t0 = time.monotonic()
    g = spawn(shards_a[2], 2, pods=[0], timeout=10, master_port=port, epoch="1")
    foreign_store(port, ["bloom/epoch"]).set("bloom/1/joined/1", "1")
    assert g.wait_exit(0, 60) == 1
    assert time.monotonic() - t0 < 35, "the deadline (10 s after the rank started), not torch's 60 s"
    out = g.pods[0].output()
    assert "process group init of 2 ranks did not complete before the rendezvous deadline" in out, out[-2000:]
