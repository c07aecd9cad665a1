"""Rendezvous of one tensor-parallel group, with a deadline and an epoch check.

1. wait until MASTER_ADDR resolves (a headless Service publishes rank 0's name only once its pod exists);
2. rank 0 serves a TCPStore on (BLOOM_BIND_ADDRESS, MASTER_PORT); the others wait for the port to open;
3. rank 0 publishes its BLOOM_EPOCH and WORLD_SIZE; every other rank compares them with its own and
   refuses to join a group of another epoch (a stale rank never joins a recreated group);
4. every rank registers under its epoch; rank 0 waits for all of them;
5. init_process_group over a store prefixed by the epoch (gloo on CPU, nccl on CUDA).

Every failure is a RendezvousError whose message says what did not happen within the deadline.
"""

from __future__ import annotations

import datetime
import logging
import socket
import time

import torch.distributed as dist

from .env import WorkerEnv

log = logging.getLogger("bloom_worker.rendezvous")


class RendezvousError(RuntimeError):
    pass


_LISTENERS: list[socket.socket] = []


def _left(deadline: float) -> float:
    return deadline - time.monotonic()


def resolve(host: str, port: int, deadline: float) -> str:
    last = ""
    while True:
        try:
            infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
            if infos:
                return str(infos[0][4][0])
        except OSError as e:
            last = str(e)
        if _left(deadline) <= 0:
            raise RendezvousError(f"MASTER_ADDR {host} did not resolve before the rendezvous deadline ({last})")
        time.sleep(min(0.5, max(0.05, _left(deadline))))


def wait_port(ip: str, port: int, host: str, deadline: float) -> None:
    last = ""
    while True:
        try:
            with socket.create_connection((ip, port), timeout=max(0.1, min(2.0, _left(deadline)))):
                return
        except OSError as e:
            last = str(e)
        if _left(deadline) <= 0:
            raise RendezvousError(
                f"master {host}:{port} ({ip}) did not accept connections before the rendezvous deadline ({last})"
            )
        time.sleep(0.2)


def rendezvous(env: WorkerEnv, deadline: float, backend: str) -> dist.TCPStore | None:
    if env.world_size == 1:
        return None
    ip = resolve(env.master_addr, env.master_port, deadline)
    td = lambda: datetime.timedelta(seconds=max(1.0, _left(deadline)))  # noqa: E731
    if env.rank == 0:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((env.bind_address, env.master_port))
        except OSError as e:
            raise RendezvousError(f"rank 0 cannot listen on {env.bind_address}:{env.master_port}: {e}") from None
        sock.listen(128)
        store = dist.TCPStore(
            env.master_addr, env.master_port, None, True, td(), wait_for_workers=False, master_listen_fd=sock.fileno()
        )
        _LISTENERS.append(sock)  # the store serves on this fd: keep the socket object alive
        store.set("bloom/epoch", env.epoch)
        store.set("bloom/world_size", str(env.world_size))
        keys = [f"bloom/{env.epoch}/joined/{r}" for r in range(1, env.world_size)]
        while True:
            missing = [r for r, k in zip(range(1, env.world_size), keys, strict=False) if not store.check([k])]
            if not missing:
                break
            if _left(deadline) <= 0:
                raise RendezvousError(
                    f"ranks {missing} of epoch {env.epoch} did not join before the rendezvous deadline "
                    f"({env.rendezvous_timeout:g}s)"
                )
            time.sleep(0.1)
    else:
        wait_port(ip, env.master_port, env.master_addr, deadline)
        try:
            store = dist.TCPStore(ip, env.master_port, None, False, td())
            store.wait(["bloom/epoch", "bloom/world_size"], td())
        except RuntimeError as e:
            raise RendezvousError(
                f"rank 0's store at {env.master_addr}:{env.master_port} did not answer: {e}"
            ) from None
        theirs = store.get("bloom/epoch").decode()
        if theirs != env.epoch:
            raise RendezvousError(
                f"epoch mismatch: this rank has BLOOM_EPOCH={env.epoch} but rank 0 at {env.master_addr} "
                f"has BLOOM_EPOCH={theirs}; refusing to join another incarnation of the group"
            )
        ws = int(store.get("bloom/world_size").decode())
        if ws != env.world_size:
            raise RendezvousError(f"world size mismatch: this rank has WORLD_SIZE={env.world_size}, rank 0 has {ws}")
        store.set(f"bloom/{env.epoch}/joined/{env.rank}", "1")
    prefixed = dist.PrefixStore(f"bloom/{env.epoch}/pg", store)
    try:
        dist.init_process_group(
            backend,
            store=prefixed,
            rank=env.rank,
            world_size=env.world_size,
            timeout=datetime.timedelta(seconds=max(60.0, env.rendezvous_timeout)),
        )
        dist.barrier()
    except RuntimeError as e:
        raise RendezvousError(f"process group init failed: {e}") from None
    return store
