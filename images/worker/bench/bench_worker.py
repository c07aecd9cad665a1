"""Worker benchmarks (not a test): shard load throughput vs a plain sequential read, and CPU tokens/s.

    .venv/bin/python images/worker/bench/bench_worker.py [--load-mb 512] [--tp 1 2 4] [--tokens 64]

1. load: writes a synthetic rank file of about --load-mb MB (random int8 matrices through the real
   ShardWriter and manifest), warms the page cache, then alternates a plain sequential read of the file
   (readinto a preallocated buffer, 16 MiB chunks) with `load_shard` (mmap, full xxh3-128 verification,
   header and dtype/shape checks, tensor views) and reports the median of each and their ratio
   (read time / load time; >= 0.9 is the goal).
2. tokens/s: a tiny random BLOOM (hidden 64, 2 layers, 8 heads, vocab 250) converted for each TP size,
   served by real bloom-worker processes (gloo), greedy decoding of --tokens new tokens for 1 request
   and for 8 concurrent requests (one batch).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
import torch

from bloom_worker.format import (
    MANIFEST_NAME,
    Manifest,
    ModelConfig,
    Quantization,
    RankFile,
    ShardWriter,
    padded_vocab,
    rank_file_name,
    rank_tensor_specs,
)
from bloom_worker.loader import load_shard

BIN = Path(sys.executable).parent


def synthetic_shard(out: Path, mb: int) -> Path:
    h = 1024
    layers = max(1, int(mb * 1e6 / (12 * h * h)))
    cfg = ModelConfig(vocab_size=4096, hidden_size=h, n_layer=layers, n_head=16)
    quant = Quantization()
    specs = rank_tensor_specs(cfg, 1, "float16", quant)
    out.mkdir(parents=True, exist_ok=True)
    w = ShardWriter(out / rank_file_name(0, 1), specs)
    g = torch.Generator().manual_seed(0)
    for s in specs:
        if s.dtype == "int8":
            t = torch.randint(-127, 128, s.shape, dtype=torch.int8, generator=g)
        else:
            t = torch.rand(s.shape, generator=g).to(getattr(torch, s.dtype))
        w.write(s.name, t)
    size, digest, fast = w.close()
    m = Manifest(
        cfg,
        1,
        "float16",
        quant,
        padded_vocab(cfg.vocab_size, 1),
        [
            RankFile(
                0,
                w.path.name,
                size,
                digest,
                0,
                cfg.vocab_size,
                {s.name: {"dtype": s.dtype, "shape": list(s.shape)} for s in specs},
                fast,
            )
        ],
    )
    (out / MANIFEST_NAME).write_text(m.to_json())
    return out / w.path.name


def plain_read(path: Path, buf: bytearray) -> float:
    t = time.perf_counter()
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        off = 0
        while n := f.readinto(view[off : off + (16 << 20)]):
            off += n
    return time.perf_counter() - t


def bench_load(mb: int, repeats: int) -> dict:
    d = Path(tempfile.mkdtemp(prefix="bloom-load-"))
    try:
        path = synthetic_shard(d, mb)
        size = path.stat().st_size
        buf = bytearray(size)
        plain_read(path, buf)  # warm the page cache
        reads, loads = [], []
        for _ in range(repeats):
            reads.append(plain_read(path, buf))
            t = time.perf_counter()
            shard = load_shard(d, 0, 1)
            loads.append(time.perf_counter() - t)
            del shard
        r, ld = statistics.median(reads), statistics.median(loads)
        return {
            "bytes": size,
            "read_s": r,
            "load_s": ld,
            "read_GBps": size / r / 1e9,
            "load_GBps": size / ld / 1e9,
            "ratio": r / ld,
        }
    finally:
        shutil.rmtree(d, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(shards: Path, tp: int, logdir: Path) -> tuple[list[subprocess.Popen], str, list[int]]:
    """One pod (a bloom-worker launcher) of tp ranks."""
    master, http, health = free_port(), free_port(), free_port()
    env = dict(
        os.environ,
        WORLD_SIZE=str(tp),
        NNODES="1",
        NODE_RANK="0",
        NPROC_PER_NODE=str(tp),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(master),
        BLOOM_DEPLOYMENT="bench",
        BLOOM_MODEL_DIR=str(shards),
        BLOOM_TENSOR_PARALLEL_SIZE=str(tp),
        BLOOM_GROUP="0",
        BLOOM_EPOCH="1",
        BLOOM_HTTP_PORT=str(http),
        BLOOM_HEALTH_PORT=str(health),
        BLOOM_RENDEZVOUS_TIMEOUT="120",
        BLOOM_TERMINATION_GRACE_SECONDS="5",
        BLOOM_BIND_ADDRESS="127.0.0.1",
        OMP_NUM_THREADS="1",
    )
    proc = subprocess.Popen(
        [str(BIN / "bloom-worker")], env=env, stdout=open(logdir / "pod.log", "wb"), stderr=subprocess.STDOUT
    )
    deadline = time.time() + 180
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{health}/readyz", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.time() > deadline:
            tail = (logdir / "pod.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"group not ready (exit code {proc.poll()}):\n{tail}")
        time.sleep(0.2)
    return [proc], f"http://127.0.0.1:{http}", [health]


def bench_tokens(tps: list[int], tokens: int) -> list[dict]:
    from transformers import BloomConfig, BloomForCausalLM

    from bloom_worker.convert import main as convert

    d = Path(tempfile.mkdtemp(prefix="bloom-tok-"))
    out = []
    try:
        torch.manual_seed(0)
        BloomForCausalLM(
            BloomConfig(vocab_size=250, hidden_size=64, n_layer=2, n_head=8, initializer_range=0.2)
        ).save_pretrained(d / "hf")
        for tp in tps:
            convert([str(d / "hf"), str(d / f"tp{tp}"), "-t", str(tp)])
            procs, url, _ = serve(d / f"tp{tp}", tp, d)
            try:
                body = {"input_ids": [5, 6, 7, 8], "max_new_tokens": tokens, "temperature": 0, "stop_at_eos": False}
                requests.post(url + "/generate", json={**body, "max_new_tokens": 4}, timeout=120)  # warm-up
                t = time.perf_counter()
                n1 = len(requests.post(url + "/generate", json=body, timeout=300).json()["output_ids"])
                single = n1 / (time.perf_counter() - t)
                counts = [0] * 8

                def call(i: int, counts: list[int] = counts, url: str = url, body: dict = body) -> None:
                    counts[i] = len(
                        requests.post(url + "/generate", json={**body, "input_ids": [5 + i] * 4}, timeout=300).json()[
                            "output_ids"
                        ]
                    )

                threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
                t = time.perf_counter()
                for th in threads:
                    th.start()
                for th in threads:
                    th.join()
                batched = sum(counts) / (time.perf_counter() - t)
                out.append({"tp": tp, "tokens_per_s_bs1": single, "tokens_per_s_8_concurrent": batched})
            finally:
                for p in procs:
                    p.send_signal(signal.SIGTERM)
                for p in procs:
                    try:
                        p.wait(15)
                    except subprocess.TimeoutExpired:
                        p.kill()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--load-mb", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--tp", type=int, nargs="*", default=[1, 2, 4])
    ap.add_argument("--tokens", type=int, default=64)
    args = ap.parse_args()
    result = {
        "load": bench_load(args.load_mb, args.repeats),
        "tokens": bench_tokens(args.tp, args.tokens),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
