"""The engine's control messages (headers, heartbeats, ids, tokens: CPU tensors) on the process group
production builds (rendezvous.backend_for + init_group), whose device backend is not gloo.

On CPU a fake backend stands for the device ("cuda:fake", never usable here: it records any use); the
group "cpu:gloo,cuda:fake" must carry a real request and idle heartbeats on gloo. A device-only group
shows the failure this guards against (review B1). On a CUDA machine the real "cpu:gloo,cuda:nccl"
group of one rank serves a request through the engine.
"""

from __future__ import annotations

import datetime
import multiprocessing as mp
import queue
import threading
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch._C._distributed_c10d import Backend as C10dBackend

from worker_helpers import free_port, local_generate, rel_err

PROMPT, NEW = [5, 6, 7, 8], 6


class FakeDeviceBackend(C10dBackend):
    """Stands for the device's backend; any collective on it is recorded and refused."""

    used: list[str] = []

    def __init__(self, rank: int, size: int) -> None:
        super().__init__(rank, size)

    def _refuse(self, op: str) -> None:
        FakeDeviceBackend.used.append(op)
        raise RuntimeError(f"the fake device backend was asked to {op}")

    def broadcast(self, *args: object, **kwargs: object) -> None:
        self._refuse("broadcast")

    def allreduce(self, *args: object, **kwargs: object) -> None:
        self._refuse("allreduce")

    def allgather(self, *args: object, **kwargs: object) -> None:
        self._refuse("allgather")

    def gather(self, *args: object, **kwargs: object) -> None:
        self._refuse("gather")


def group(
    rank: int, world: int, port: int, device: torch.device, device_backend: str, device_only: bool = False
) -> str:
    from bloom_worker.rendezvous import backend_for, init_group

    if device_backend == "fake":
        dist.Backend.register_backend("fake", lambda store, r, n, t: FakeDeviceBackend(r, n), devices=["cuda"])
    store = dist.TCPStore("127.0.0.1", port, world, rank == 0, datetime.timedelta(seconds=60))
    backend = f"{device.type}:{device_backend}" if device_only else backend_for(device, device_backend)
    init_group(store, rank, world, backend, datetime.timedelta(seconds=60), time.monotonic() + 60)
    return backend


def serve(shards: Path, rank: int, world: int, device: torch.device, idle_s: float) -> dict:
    """Run the engine on this rank: rank 0 leads (a request, idle heartbeats, a request, stop)."""
    from bloom_worker.engine import Engine
    from bloom_worker.engine_config import EngineConfig
    from bloom_worker.loader import load_shard
    from bloom_worker.metrics import Metrics
    from bloom_worker.model import BloomTP, Comm
    from bloom_worker.sequence import Finished, PromptLogprobs, Request, SamplingParams, Token

    comm = Comm(rank, world, dist.is_initialized())
    sent: list[int] = []
    broadcast = comm.broadcast
    comm.broadcast = lambda x, src=0: (sent.append(x.numel()), broadcast(x, src))[1]  # type: ignore[method-assign]
    engine = Engine(
        BloomTP(load_shard(shards, rank, world), comm, device), Metrics(), EngineConfig(kv_cache_tokens=1024)
    )
    if rank != 0:
        engine.run_follower()
        return {"broadcasts": len(sent)}
    leader = threading.Thread(target=engine.run_leader, daemon=True)
    leader.start()
    out = []
    for _ in range(2):
        req = Request(ids=PROMPT, params=SamplingParams(max_tokens=NEW, ignore_eos=True, debug_logits=True))
        engine.submit(req)
        ids, logits = [], None
        while not isinstance(event := req.events.get(timeout=60), Finished):
            if isinstance(event, Token):
                ids.append(event.id)
            elif isinstance(event, PromptLogprobs) and event.logits is not None:
                logits = event.logits.tolist()
        out.append({"output_ids": ids, "logits": logits})
        time.sleep(idle_s)  # idle: rank 0 broadcasts a heartbeat header every second
    engine.stopping.set()
    leader.join(30)
    return {"results": out, "broadcasts": len(sent), "stopped": not leader.is_alive()}


def fake_rank(shards: Path, rank: int, world: int, port: int, results: mp.Queue) -> None:
    try:
        backend = group(rank, world, port, torch.device("cuda"), "fake")
        cpu = dist.distributed_c10d._get_default_group()._get_backend(torch.device("cpu"))
        out = serve(shards, rank, world, torch.device("cpu"), idle_s=1.5)
        results.put((rank, {**out, "backend": backend, "cpu": type(cpu).__name__, "fake": FakeDeviceBackend.used}))
    except Exception as e:  # noqa: BLE001
        results.put((rank, {"error": repr(e)}))


def device_only_rank(port: int, results: mp.Queue) -> None:
    """A group of the device backend alone (as production built it before): the first CPU collective,
    init_group's barrier or the engine's first header, has no backend."""
    from bloom_worker.step_plan import CMD_IDLE, idle_header

    try:
        group(0, 1, port, torch.device("cuda"), "fake", device_only=True)
        dist.broadcast(idle_header(CMD_IDLE), 0)
        results.put("no error")
    except Exception as e:  # noqa: BLE001
        results.put(str(e))


def run_ranks(target, args_of_rank: list[tuple]) -> list:
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, results)) for args in args_of_rank]
    for p in procs:
        p.start()
    out: list = []
    deadline = time.monotonic() + 180
    try:
        while len(out) < len(procs):
            try:
                out.append(results.get(timeout=1))
            except queue.Empty:
                codes = [p.exitcode for p in procs]
                assert time.monotonic() < deadline and None in codes, f"ranks exited with {codes} without a result"
        return out
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()


def test_control_messages_travel_on_gloo_beside_a_device_backend(shards_a: dict[int, Path]) -> None:
    port = free_port()
    got = dict(run_ranks(fake_rank, [(shards_a[2], r, 2, port) for r in range(2)]))
    for rank in (0, 1):
        assert "error" not in got[rank], got[rank]
        assert got[rank]["backend"] == "cpu:gloo,cuda:fake" and got[rank]["cpu"] == "ProcessGroupGloo"
        assert got[rank]["fake"] == [], "a CPU control tensor went to the device backend"
    leader = got[0]
    assert leader["stopped"]
    reference = local_generate(shards_a[1], [PROMPT], NEW, want_logits=False)[0]["output_ids"]
    assert [r["output_ids"] for r in leader["results"]] == [reference, reference]
    # the follower received every header, heartbeat and token broadcast the leader sent
    assert got[1]["broadcasts"] == leader["broadcasts"]
    per_request = 2 * NEW  # a step (header + payload) per new token: the prefill gives the first
    heartbeats = leader["broadcasts"] - 2 * per_request - 1  # and the stop header
    assert heartbeats >= 2, "expected idle heartbeats between and after the requests"


def test_a_device_only_group_cannot_carry_control_messages() -> None:
    [error] = run_ranks(device_only_rank, [(free_port(),)])
    assert "No backend type associated with device type cpu" in error


def gpu_rank(shards: Path, port: int, results: mp.Queue) -> None:
    try:
        device = torch.device("cuda", 0)
        torch.cuda.set_device(device)
        backend = group(0, 1, port, device, "nccl")
        out = serve(shards, 0, 1, device, idle_s=1.5)
        results.put({**out, "backend": backend})
    except Exception as e:  # noqa: BLE001
        results.put({"error": repr(e)})


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_nccl_group_serves_through_the_engine(shards_a: dict[int, Path]) -> None:
    """World size 1, but with a process group: Comm issues every collective (NCCL for the model's
    tensors, gloo for the control messages)."""
    [got] = run_ranks(gpu_rank, [(shards_a[1], free_port())])
    assert "error" not in got, got
    assert got["backend"] == "cpu:gloo,cuda:nccl" and got["stopped"]
    cpu = local_generate(shards_a[1], [PROMPT], NEW)[0]
    for r in got["results"]:
        assert len(r["output_ids"]) == NEW
        assert rel_err(torch.tensor(r["logits"]), torch.tensor(cpu["logits"])) <= 0.02
