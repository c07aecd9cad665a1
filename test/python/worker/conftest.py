"""Fixtures of the worker suite: tiny random BLOOMs, their shards, and real bloom-worker process groups."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import torch

ROOT = Path(__file__).resolve().parents[3]
CONTRACT = json.loads((ROOT / "contract" / "env.json").read_text())
BIN = Path(sys.executable).parent

# model A: 8 heads (TP 1/2/4/8), vocab 250 splits unevenly over 4 and 8 ranks; has a tokenizer
MODEL_A = dict(vocab_size=250, hidden_size=64, n_layer=2, n_head=8)
# model B: 3 heads (odd, not a power of two: ALiBi's interleaved extra slopes), TP 1/3, vocab 250 over 3
MODEL_B = dict(vocab_size=250, hidden_size=48, n_layer=2, n_head=3)
WORDS = ["hello", "world", "bloom", "int8", "tensor", "parallel", "the", "a", "of", "kubernetes", "operator", "model"]


def build_tokenizer(vocab_size: int) -> "object":
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "<pad>": 3}
    for w in WORDS:
        vocab[w] = len(vocab)
    i = 0
    while len(vocab) < vocab_size:
        vocab[f"w{i}"] = len(vocab)
        i += 1
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return tok


def build_hf(path: Path, seed: int, tokenizer: bool, safe: bool = True, **cfg: int) -> Path:
    from transformers import BloomConfig, BloomForCausalLM

    torch.manual_seed(seed)
    # initializer_range 0.2 (not 0.02) so logits spread out and quantization error is visible
    config = BloomConfig(initializer_range=0.2, **cfg)
    model = BloomForCausalLM(config).eval()
    model.save_pretrained(path, safe_serialization=safe)
    if tokenizer:
        build_tokenizer(cfg["vocab_size"]).save(str(path / "tokenizer.json"))
    return path


def convert(src: Path, out: Path, tp: int, *extra: str) -> Path:
    from bloom_worker.convert import main

    assert main([str(src), str(out), "--tensor-parallel", str(tp), *extra]) == 0
    return out


@pytest.fixture(scope="session")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("worker")


@pytest.fixture(scope="session")
def model_a(work: Path) -> Path:
    return build_hf(work / "hf-a", 1, True, **MODEL_A)


@pytest.fixture(scope="session")
def model_b(work: Path) -> Path:
    return build_hf(work / "hf-b", 2, False, **MODEL_B)


@pytest.fixture(scope="session")
def shards_a(work: Path, model_a: Path) -> dict[int, Path]:
    return {tp: convert(model_a, work / f"a-tp{tp}", tp) for tp in (1, 2, 4, 8)}


@pytest.fixture(scope="session")
def shards_b(work: Path, model_b: Path) -> dict[int, Path]:
    return {tp: convert(model_b, work / f"b-tp{tp}", tp) for tp in (1, 3)}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def contract_env(values: dict[str, str]) -> dict[str, str]:
    """The variables the operator writes, named exactly as contract/env.json names them."""
    names = list(CONTRACT["torchrun"]) + list(CONTRACT["bloom"])
    assert set(values) == set(names), f"test env must set exactly the contract's names: {set(values) ^ set(names)}"
    return {k: values[k] for k in names}


@dataclass
class Rank:
    rank: int
    bind: str
    health_port: int
    proc: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def url(self, path: str) -> str:
        return f"http://{self.bind}:{self.health_port}{path}"


@dataclass
class Group:
    ranks: list[Rank] = field(default_factory=list)
    http: str = ""

    def api(self, path: str) -> str:
        return self.http + path

    def wait_ready(self, timeout: float = 120.0) -> "Group":
        deadline = time.monotonic() + timeout
        pending = list(self.ranks)
        while pending:
            for r in list(pending):
                if r.proc.poll() is not None:
                    raise AssertionError(f"rank {r.rank} exited with {r.proc.returncode}:\n{r.output()[-3000:]}")
                try:
                    if requests.get(r.url("/readyz"), timeout=2).status_code == 200:
                        pending.remove(r)
                except requests.RequestException:
                    pass
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- rank {r.rank}\n{r.output()[-2000:]}" for r in self.ranks)
                raise AssertionError(f"group not ready after {timeout}s:\n{logs}")
            time.sleep(0.2)
        return self

    def wait_exit(self, rank: int, timeout: float) -> int:
        try:
            return self.ranks[rank].proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"rank {rank} still running after {timeout}s:\n{self.ranks[rank].output()[-2000:]}") from None

    def stop(self) -> None:
        for r in self.ranks:
            if r.proc.poll() is None:
                r.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for r in self.ranks:
            try:
                r.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                r.proc.kill()
                r.proc.wait()


def launch(
    model_dir: Path,
    world: int,
    logdir: Path,
    epoch: str = "1",
    timeout: float = 60.0,
    binds: list[str] | None = None,
    overrides: dict[int, dict[str, str]] | None = None,
    ranks: list[int] | None = None,
    master_port: int | None = None,
) -> Group:
    binds = binds or ["127.0.0.1"] * world
    master = binds[0]
    master_port = master_port or free_port(master)
    http = free_port(master)
    group = Group(http=f"http://{master}:{http}")
    logdir.mkdir(parents=True, exist_ok=True)
    for rank in ranks if ranks is not None else range(world):
        health = free_port(binds[rank])
        values = {
            "RANK": str(rank),
            "WORLD_SIZE": str(world),
            "LOCAL_RANK": "0",
            "LOCAL_WORLD_SIZE": "1",
            "MASTER_ADDR": master,
            "MASTER_PORT": str(master_port),
            "BLOOM_DEPLOYMENT": "tiny",
            "BLOOM_MODEL_DIR": str(model_dir),
            "BLOOM_TENSOR_PARALLEL_SIZE": str(world),
            "BLOOM_GROUP": "0",
            "BLOOM_EPOCH": epoch,
            "BLOOM_HTTP_PORT": str(http),
            "BLOOM_HEALTH_PORT": str(health),
            "BLOOM_RENDEZVOUS_TIMEOUT": str(timeout),
        }
        values.update((overrides or {}).get(rank, {}))
        env = {k: v for k, v in os.environ.items() if k not in values}
        env.update(contract_env(values))
        env["BLOOM_BIND_ADDRESS"] = binds[rank]
        env["OMP_NUM_THREADS"] = "1"
        env["PYTHONUNBUFFERED"] = "1"
        log = logdir / f"rank{rank}.log"
        with open(log, "wb") as f:
            proc = subprocess.Popen([str(BIN / "bloom-worker")], env=env, stdout=f, stderr=subprocess.STDOUT)
        group.ranks.append(Rank(rank, binds[rank], health, proc, log))
    return group


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator:
    """launch(...) that always cleans its processes up."""
    groups: list[Group] = []

    def _spawn(model_dir: Path, world: int, **kw: object) -> Group:
        g = launch(model_dir, world, tmp_path / f"g{len(groups)}", **kw)  # type: ignore[arg-type]
        groups.append(g)
        return g

    yield _spawn
    for g in groups:
        g.stop()
