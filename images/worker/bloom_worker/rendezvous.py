"""Rendezvous of one tensor-parallel group, with a deadline and an epoch check.

1. wait until MASTER_ADDR resolves (a headless Service publishes pod 0's name only once it exists); a
   loopback MASTER_ADDR (a single-pod group) needs no wait;
2. rank 0 serves a TCPStore on MASTER_PORT, bound to MASTER_ADDR when that is a loopback address (the
   store stays inside the pod), else to BLOOM_BIND_ADDRESS; the others wait for the port to open. Under
   torchrun its agent already serves that store and rank 0 joins it like the others;
3. rank 0 publishes its BLOOM_EPOCH and WORLD_SIZE; every other rank compares them with its own and
   refuses to join a group of another epoch (a stale rank never joins a recreated group);
4. every rank registers under its epoch; rank 0 waits for all of them;
5. init_process_group over a store prefixed by the epoch, with the backend of `backend_for`.

Every failure is a RendezvousError whose message says what did not happen within the deadline.

A TCPStore has no authentication: any client that reaches MASTER_PORT can read and write its keys (the
group's NetworkPolicy keeps other pods out where the CNI enforces it). So the rendezvous never trusts
what it cannot check and never waits past its deadline:
- rank 0 publishes with compare_set, so a value a foreign client wrote first is seen, and it keeps
  checking its values while it waits: a forged or overwritten epoch fails the group at once, with a
  message, instead of letting a rank join under it (a rank never joins a group of another epoch);
- garbage bytes and idle connections are torch's store's to drop (its libuv server does);
- a forged "joined" key can make rank 0 start init_process_group before that rank exists: a watchdog
  ends the process at the deadline if init has not completed, as no torch call can be interrupted.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import socket
import sys
import threading
import time

import torch
import torch.distributed as dist

from .env import RankEnv

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


def backend_for(device: torch.device, device_backend: str = "nccl") -> str:
    """Tensors of the model travel on the device's backend; the engine's control messages (headers,
    heartbeats, ids, tokens) are CPU tensors and need a CPU backend beside it."""
    return "gloo" if device.type == "cpu" else f"cpu:gloo,{device.type}:{device_backend}"


def _exit_at(deadline: float, done: threading.Event, what: str) -> None:
    """Ends the process if `done` is not set by the deadline: a blocked torch call cannot be interrupted."""

    def watch() -> None:
        if not done.wait(max(0.0, _left(deadline))):
            message = f"{what} did not complete before the rendezvous deadline"
            log.error("%s", message)
            print(f"bloom-worker: error: {message}", file=sys.stderr, flush=True)
            os._exit(1)

    threading.Thread(target=watch, name="rendezvous-deadline", daemon=True).start()


def init_group(
    store: dist.Store, rank: int, world_size: int, backend: str, timeout: datetime.timedelta, deadline: float
) -> None:
    """init_process_group and a first barrier, done by the rendezvous deadline (else the process exits:
    a rank that registered never connected, e.g. its key was forged); `timeout` is the group's own."""
    done = threading.Event()
    _exit_at(deadline, done, f"process group init of {world_size} ranks")
    try:
        dist.init_process_group(backend, store=store, rank=rank, world_size=world_size, timeout=timeout)
        dist.barrier()
    except RuntimeError as e:
        raise RendezvousError(f"process group init failed: {e}") from None
    finally:
        done.set()


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def store_bind_address(env: RankEnv) -> str:
    """Where rank 0 serves the store: a loopback master (single-pod group) keeps it inside the pod."""
    return env.pod.master_addr if is_loopback(env.pod.master_addr) else env.pod.bind_address


def master_ip(env: RankEnv, deadline: float) -> str:
    pod = env.pod
    return pod.master_addr if is_loopback(pod.master_addr) else resolve(pod.master_addr, pod.master_port, deadline)


def _serve_store(env: RankEnv, deadline: float) -> dist.TCPStore:
    pod = env.pod
    ip = master_ip(env, deadline)  # the store's own client connects there
    bind = store_bind_address(env)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((bind, pod.master_port))
    except OSError as e:
        raise RendezvousError(f"rank 0 cannot listen on {bind}:{pod.master_port}: {e}") from None
    sock.listen(128)
    td = datetime.timedelta(seconds=max(1.0, _left(deadline)))
    store = dist.TCPStore(ip, pod.master_port, None, True, td, wait_for_workers=False, master_listen_fd=sock.fileno())
    _LISTENERS.append(sock)  # the store serves on this fd: keep the socket object alive
    return store


def _join_store(env: RankEnv, deadline: float) -> dist.TCPStore:
    pod = env.pod
    ip = master_ip(env, deadline)
    wait_port(ip, pod.master_port, pod.master_addr, deadline)
    try:
        return dist.TCPStore(ip, pod.master_port, None, False, datetime.timedelta(seconds=max(1.0, _left(deadline))))
    except RuntimeError as e:
        raise RendezvousError(f"rank 0's store at {pod.master_addr}:{pod.master_port} did not answer: {e}") from None


FOREIGN = "a foreign client of the store (is MASTER_PORT reachable from outside the group?)"


def _publish(store: dist.TCPStore, key: str, value: str) -> None:
    """Sets key to value unless a foreign client wrote another value first (compare_set returns what is there)."""
    there = store.compare_set(key, "", value).decode()
    if there != value:
        raise RendezvousError(
            f"{key} is {there!r} in rank 0's store, written by {FOREIGN}, not {value!r}; refusing to rendezvous"
        )


def _still_published(store: dist.TCPStore, published: dict[str, str]) -> None:
    for key, value in published.items():
        there = store.get(key).decode()
        if there != value:
            raise RendezvousError(f"{key} was overwritten with {there!r} by {FOREIGN}; refusing to rendezvous")


def _publish_and_wait(store: dist.TCPStore, env: RankEnv, deadline: float) -> None:
    pod = env.pod
    published = {"bloom/epoch": pod.epoch, "bloom/world_size": str(pod.world_size)}
    for key, value in published.items():
        _publish(store, key, value)
    keys = {r: f"bloom/{pod.epoch}/joined/{r}" for r in range(1, pod.world_size)}
    while True:
        _still_published(store, published)
        missing = [r for r, k in keys.items() if not store.check([k])]
        if not missing:
            return
        if _left(deadline) <= 0:
            raise RendezvousError(
                f"ranks {missing} of epoch {pod.epoch} did not join before the rendezvous deadline "
                f"({pod.rendezvous_timeout:g}s)"
            )
        time.sleep(0.1)


def _check_and_join(store: dist.TCPStore, env: RankEnv, deadline: float) -> None:
    pod = env.pod
    try:
        store.wait(["bloom/epoch", "bloom/world_size"], datetime.timedelta(seconds=max(1.0, _left(deadline))))
    except RuntimeError as e:
        raise RendezvousError(f"rank 0's store at {pod.master_addr}:{pod.master_port} did not answer: {e}") from None
    theirs = store.get("bloom/epoch").decode()
    if theirs != pod.epoch:
        raise RendezvousError(
            f"epoch mismatch: this rank has BLOOM_EPOCH={pod.epoch} but rank 0 at {pod.master_addr} "
            f"has BLOOM_EPOCH={theirs}; refusing to join another incarnation of the group"
        )
    ws = int(store.get("bloom/world_size").decode())
    if ws != pod.world_size:
        raise RendezvousError(f"world size mismatch: this rank has WORLD_SIZE={pod.world_size}, rank 0 has {ws}")
    store.set(f"bloom/{pod.epoch}/joined/{env.rank}", "1")


def rendezvous(env: RankEnv, deadline: float, backend: str) -> dist.TCPStore | None:
    """Join the group of env's epoch; a group of one needs no process group."""
    if env.world_size == 1:
        return None
    if env.rank == 0:
        store = _join_store(env, deadline) if env.agent_store else _serve_store(env, deadline)
        _publish_and_wait(store, env, deadline)
    else:
        store = _join_store(env, deadline)
        _check_and_join(store, env, deadline)
    timeout = datetime.timedelta(seconds=max(60.0, env.pod.rendezvous_timeout))
    init_group(
        dist.PrefixStore(f"bloom/{env.pod.epoch}/pg", store), env.rank, env.world_size, backend, timeout, deadline
    )
    return store
