"""Helpers of the worker suite: tiny random BLOOMs, conversion, real bloom-worker pods (launcher + ranks)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import torch

ROOT = Path(__file__).resolve().parents[3]
CONTRACT = json.loads((ROOT / "contract" / "env.json").read_text())
BIN = Path(sys.executable).parent

# model A: 8 heads (TP 1/2/4/8), vocab 250 splits unevenly over 4 and 8 ranks; has a tokenizer
MODEL_A = dict(vocab_size=250, hidden_size=64, n_layer=2, n_head=8)
# model B: 3 heads (odd, not a power of two: ALiBi's interleaved extra slopes), TP 1/3, vocab 250 over 3
MODEL_B = dict(vocab_size=250, hidden_size=48, n_layer=2, n_head=3)
# DeepSpeed import: hidden 128 so that 32 quantization groups cover whole rows at tp_size 4
DS_MODEL = dict(vocab_size=250, hidden_size=128, n_layer=2, n_head=8)
WORDS = ["hello", "world", "bloom", "int8", "tensor", "parallel", "the", "a", "of", "kubernetes", "operator", "model"]


def build_tokenizer(vocab_size: int) -> object:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

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
    model.save_pretrained(path)
    if not safe:  # transformers 5 writes safetensors only: re-write as two torch .bin shards plus an index
        from safetensors.torch import load_file

        sd = load_file(str(path / "model.safetensors"))
        (path / "model.safetensors").unlink()
        names = sorted(sd)
        half = len(names) // 2
        weight_map = {}
        for j, part in enumerate((names[:half], names[half:])):
            fname = f"pytorch_model-{j + 1:05d}-of-00002.bin"
            torch.save({n: sd[n] for n in part}, path / fname)
            weight_map.update({n: fname for n in part})
        (path / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    if tokenizer:
        build_tokenizer(cfg["vocab_size"]).save(str(path / "tokenizer.json"))
    return path


def convert(src: Path, out: Path, tp: int, *extra: str) -> Path:
    from bloom_worker.convert import main

    assert main([str(src), str(out), "--tensor-parallel", str(tp), *extra]) == 0
    return out


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def contract_env(values: dict[str, str]) -> dict[str, str]:
    """The variables the operator writes into a pod, named exactly as contract/env.json names them."""
    names = list(CONTRACT["torchrun"]) + list(CONTRACT["torchrunDefaults"]) + list(CONTRACT["bloom"])
    assert set(values) == set(names), f"test env must set exactly the contract's names: {set(values) ^ set(names)}"
    return {k: values[k] for k in names}


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out += [int(c) for c in task.read_text().split()]
        except OSError:
            pass
    return out


@dataclass
class Pod:
    """One bloom-worker launcher and its rank processes."""

    node_rank: int
    bind: str
    health_port: int
    proc: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def url(self, path: str) -> str:
        return f"http://{self.bind}:{self.health_port}{path}"

    def health(self, path: str = "/healthz") -> requests.Response:
        return requests.get(self.url(path), timeout=5)

    def rank_pids(self) -> list[int]:
        return [r["pid"] for r in self.health().json()["ranks"]]


@dataclass
class Group:
    """The pods of one group; `start` runs one of them (a bloom-worker launcher)."""

    envs: dict[int, dict[str, str]]
    logdir: Path
    http: str
    pods: list[Pod] = field(default_factory=list)

    def api(self, path: str) -> str:
        return self.http + path

    def start(self, node: int) -> Pod:
        env = self.envs[node]
        log = self.logdir / f"pod{node}.log"
        with open(log, "wb") as f:
            proc = subprocess.Popen([str(BIN / "bloom-worker")], env=env, stdout=f, stderr=subprocess.STDOUT)
        pod = Pod(node, env["BLOOM_BIND_ADDRESS"], int(env["BLOOM_HEALTH_PORT"]), proc, log)
        self.pods.append(pod)
        return pod

    def wait_ready(self, timeout: float = 120.0) -> Group:
        deadline = time.monotonic() + timeout
        pending = list(self.pods)
        while pending:
            for p in list(pending):
                if p.proc.poll() is not None:
                    raise AssertionError(f"pod {p.node_rank} exited with {p.proc.returncode}:\n{p.output()[-3000:]}")
                try:
                    if p.health("/readyz").status_code == 200:
                        pending.remove(p)
                except requests.RequestException:
                    pass
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- pod {p.node_rank}\n{p.output()[-2000:]}" for p in self.pods)
                raise AssertionError(f"group not ready after {timeout}s:\n{logs}")
            time.sleep(0.2)
        return self

    def wait_exit(self, pod: int, timeout: float) -> int:
        try:
            return self.pods[pod].proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"pod {pod} still running after {timeout}s:\n{self.pods[pod].output()[-2000:]}"
            ) from None

    def stop(self) -> None:
        for p in self.pods:
            if p.proc.poll() is None:
                p.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for p in self.pods:
            try:
                p.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                for pid in children(p.proc.pid):
                    os.kill(pid, signal.SIGKILL)
                p.proc.kill()
                p.proc.wait()


def launch(
    model_dir: Path,
    world: int,
    logdir: Path,
    nproc: int = 1,
    epoch: str = "1",
    timeout: float = 60.0,
    binds: list[str] | None = None,
    overrides: dict[int, dict[str, str]] | None = None,
    pods: list[int] | None = None,
    master_port: int | None = None,
    optional: dict[str, str] | None = None,
) -> Group:
    """A group of `world` ranks as world / nproc pods of `nproc` ranks; starts the pods listed in `pods`
    (default all; the others can be started later with Group.start). binds and overrides (of contract
    variables) are by pod; `optional` sets the contract's optional variables in every pod."""
    assert set(optional or {}) <= set(CONTRACT["optional"]), "only the contract's optional names"
    assert world % nproc == 0
    nnodes = world // nproc
    binds = binds or ["127.0.0.1"] * nnodes
    master = binds[0]
    master_port = master_port or free_port(master)
    http = free_port(master)
    envs = {}
    for node in range(nnodes):
        values = {
            "WORLD_SIZE": str(world),
            "NNODES": str(nnodes),
            "NODE_RANK": str(node),
            "NPROC_PER_NODE": str(nproc),
            "MASTER_ADDR": master,
            "MASTER_PORT": str(master_port),
            "BLOOM_DEPLOYMENT": "tiny",
            "BLOOM_MODEL_DIR": str(model_dir),
            "BLOOM_TENSOR_PARALLEL_SIZE": str(world),
            "BLOOM_GROUP": "0",
            "BLOOM_EPOCH": epoch,
            "BLOOM_HTTP_PORT": str(http),
            "BLOOM_HEALTH_PORT": str(free_port(binds[node])),
            "BLOOM_RENDEZVOUS_TIMEOUT": str(timeout),
            "BLOOM_TERMINATION_GRACE_SECONDS": "30",
        }
        values.update((overrides or {}).get(node, {}))
        for name in CONTRACT["torchrunDefaults"]:
            values.setdefault(name, values[name.removeprefix("PET_")])
        env = {k: v for k, v in os.environ.items() if k not in values and k not in CONTRACT["process"]}
        env.update(contract_env(values))
        env["BLOOM_BIND_ADDRESS"] = binds[node]
        env.update(optional or {})
        env["OMP_NUM_THREADS"] = "1"
        env["PYTHONUNBUFFERED"] = "1"
        envs[node] = env
    logdir.mkdir(parents=True, exist_ok=True)
    group = Group(envs, logdir, f"http://{master}:{http}")
    for node in pods if pods is not None else range(nnodes):
        group.start(node)
    return group


def assemble(shard_dir: Path) -> dict[str, torch.Tensor]:
    """All ranks of a shard directory put back together: full int8 codes, scales, dequantized matrices."""
    from bloom_worker.format import COLUMN_PARALLEL, QUANTIZED, Manifest, dequantize
    from bloom_worker.loader import load_shard

    m = Manifest.read(shard_dir)
    tp = m.tensor_parallel_size
    shards = [load_shard(shard_dir, r, tp) for r in range(tp)]
    out: dict[str, torch.Tensor] = {}
    emb = torch.cat([s.tensors["word_embeddings.weight"] for s in shards])
    out["word_embeddings.weight"] = emb[: m.config.vocab_size].clone()
    assert not emb[m.config.vocab_size :].any(), "vocab padding rows must be zero"
    for name in shards[0].tensors:
        if name == "word_embeddings.weight" or not name.startswith("h."):
            if name != "word_embeddings.weight":
                out[name] = shards[0].tensors[name].clone()
            continue
        matrix = next((q for q in QUANTIZED if f".{q}." in name), None)
        if matrix is None:
            out[name] = shards[0].tensors[name].clone()
            continue
        parts = [s.tensors[name] for s in shards]
        column = matrix in COLUMN_PARALLEL
        if name.endswith(".weight"):
            out[name] = torch.cat(parts, dim=0 if column else 1)
            base = name[: -len(".weight")]
            scales = [s.tensors[base + ".scale"] for s in shards]
            # per-element scale [out, in]: each rank's scale applies to its own slice
            full = [
                sc[:, None].expand(p.shape) if sc.dim() == 1 else sc.repeat_interleave(p.shape[1] // sc.shape[1], dim=1)
                for p, sc in zip(parts, scales, strict=False)
            ]
            out[base + ".scale_full"] = torch.cat(full, dim=0 if column else 1)
            out[base + ".dequant"] = torch.cat(
                [dequantize(p, sc) for p, sc in zip(parts, scales, strict=False)], dim=0 if column else 1
            )
        elif name.endswith(".bias"):
            out[name] = torch.cat(parts) if column else parts[0].clone()
    return out


def hf_state(src: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    sd = load_file(str(src / "model.safetensors"))
    return {k.removeprefix("transformer."): v.float() for k, v in sd.items()}


def ds_group_quantize(w: torch.Tensor, parallel_dim: int, groups: int = 32) -> list[torch.Tensor]:
    """DeepSpeed's GroupQuantizer (replace_module.py, v0.7.x): [int8, (G, 3) scales with half-scales]."""
    q_range = 256
    flat = w.reshape(groups, -1)
    scale = torch.maximum(flat.min(1, keepdim=True)[0].abs(), flat.max(1, keepdim=True)[0].abs()) * 2.0 / q_range
    q = (flat / scale).round().clamp(-q_range // 2, q_range // 2 - 1).reshape(w.shape).to(torch.int8)
    halves = w.split(w.shape[parallel_dim] // 2, dim=parallel_dim)
    hs = []
    for h in halves:
        f = h.reshape(groups, -1)
        hs.append(
            (torch.maximum(f.min(1, keepdim=True)[0].abs(), f.max(1, keepdim=True)[0].abs()) * 2.0 / q_range)
            .squeeze()
            .unsqueeze(0)
        )
    return [q, torch.cat([scale.squeeze().unsqueeze(0), hs[0], hs[1]], dim=0).reshape(groups, -1).contiguous()]


def write_deepspeed(
    src: Path, out: Path, tp: int = 4, chunks: int = 2, groups: int = 32, half_scales: bool = True
) -> Path:
    """A synthetic checkpoint in the microsoft/bloom-deepspeed-inference-int8 layout, from an HF model."""
    import shutil

    sd = hf_state(src)
    cfg = json.loads((src / "config.json").read_text())
    out.mkdir(parents=True)
    shutil.copyfile(src / "config.json", out / "config.json")
    torch.save(
        {
            f"transformer.{n}": sd[n].half()
            for n in (
                "word_embeddings.weight",
                "word_embeddings_layernorm.weight",
                "word_embeddings_layernorm.bias",
                "ln_f.weight",
                "ln_f.bias",
            )
        },
        out / "non-tp.pt",
    )
    n_layer = cfg["n_layer"]
    per_chunk = -(-n_layer // chunks)
    names = {c: [] for c in range(chunks)}
    for s in range(tp):
        files = [dict() for _ in range(chunks)]
        for i in range(n_layer):
            p = f"h.{i}."
            d = files[i // per_chunk]
            P = f"transformer.h.{i}."
            d[P + "norm_w"], d[P + "norm_b"] = (
                sd[p + "input_layernorm.weight"].half(),
                sd[p + "input_layernorm.bias"].half(),
            )
            d[P + "mlp.attn_nw"], d[P + "mlp.attn_nb"] = (
                sd[p + "post_attention_layernorm.weight"].half(),
                sd[p + "post_attention_layernorm.bias"].half(),
            )
            for hf, (wk, bk, column) in {
                "self_attention.query_key_value": ("attention.attn_qkvw", "attention.attn_qkvb", True),
                "self_attention.dense": ("attention.attn_ow", "attention.attn_ob", False),
                "mlp.dense_h_to_4h": ("mlp.inter_w", "mlp.inter_b", True),
                "mlp.dense_4h_to_h": ("mlp.output_w", "mlp.output_b", False),
            }.items():
                w, b = sd[p + hf + ".weight"], sd[p + hf + ".bias"]
                if column:
                    n = w.shape[0] // tp
                    w, b = w[s * n : (s + 1) * n], b[s * n : (s + 1) * n]
                else:
                    n = w.shape[1] // tp
                    w = w[:, s * n : (s + 1) * n]
                q, scale = ds_group_quantize(w, 0 if column else 1, groups)
                d[P + wk] = [q, scale if half_scales else scale[:, :1].contiguous()]
                d[P + bk] = b.half()
        for c in range(chunks):
            torch.save(files[c], out / f"tp_{s:02d}_{c:02d}.pt")
    tp_list = [f"tp_{s:02d}_{c:02d}.pt" for c in range(chunks) for s in range(tp)]
    (out / "ds_inference_config.json").write_text(
        json.dumps(
            {
                "type": "BLOOM",
                "checkpoints": {"non_tp": ["non-tp.pt"], "tp": tp_list},
                "version": 1.0,
                "parallelization": "tp",
                "tp_size": tp,
                "dtype": "int8",
            }
        )
    )
    del names
    return out


def local_model(shard_dir: Path):
    """The worker's model at TP=1, in this process."""
    from bloom_worker.loader import load_shard
    from bloom_worker.model import BloomTP, Comm

    return BloomTP(load_shard(shard_dir, 0, 1), Comm(), torch.device("cpu"))


def local_engine(shard_dir: Path, model=None, prefill_chunk: int = 512, block_size: int = 16, kv_tokens: int = 4096):  # noqa: ANN001, ANN201
    """The worker's engine at TP=1 in this process (rank 0 leading a group of one), not started."""
    from bloom_worker.engine import Engine
    from bloom_worker.engine_config import EngineConfig, SchedulerConfig
    from bloom_worker.metrics import Metrics

    config = EngineConfig(
        scheduler=SchedulerConfig(prefill_chunk=prefill_chunk), block_size=block_size, kv_cache_tokens=kv_tokens
    )
    return Engine(model if model is not None else local_model(shard_dir), Metrics(), config)


def local_generate(
    shard_dir: Path, prompts: list[list[int]], max_new: int, want_logits: bool = True, **engine_args: object
) -> list[dict]:
    """Greedy tokens of the in-process engine (all prompts submitted at once), and the prompt's raw
    logits (the debug hook) when `want_logits`."""
    import threading

    from bloom_worker.sequence import Finished, PromptLogprobs, Request, SamplingParams, Token

    engine = local_engine(shard_dir, **engine_args)  # type: ignore[arg-type]
    t = threading.Thread(target=engine.run_leader, daemon=True)
    t.start()
    reqs = []
    for p in prompts:
        sp = SamplingParams(max_tokens=max_new, ignore_eos=True, debug_logits=want_logits)
        reqs.append(Request(ids=p, params=sp))
        engine.submit(reqs[-1])
    out = []
    for r in reqs:
        ids, logits = [], None
        while True:
            ev = r.events.get(timeout=60)
            if isinstance(ev, Token):
                ids.append(ev.id)
            elif isinstance(ev, PromptLogprobs):
                logits = ev.logits.tolist() if ev.logits is not None else None
            else:
                assert isinstance(ev, Finished), ev
                break
        out.append({"output_ids": ids, "logits": logits})
    engine.stopping.set()
    t.join(10)
    return out


def hf_logits(src: Path, ids: list[int], fake_quant_from: Path | None = None) -> torch.Tensor:
    """transformers' fp32 BloomForCausalLM logits [T, V]; optionally with the shard's weights put in
    (dequantized int8 matrices, fp16-rounded norms, biases and embeddings): the same model the worker
    runs, computed by transformers."""
    from transformers import BloomForCausalLM

    model = BloomForCausalLM.from_pretrained(src, torch_dtype=torch.float32).eval()
    if fake_quant_from is not None:
        full = assemble(fake_quant_from)
        sd = {}
        for k in model.state_dict():
            name = k.removeprefix("transformer.")
            if name == "lm_head.weight":
                continue
            sd[k] = (
                full[name[: -len(".weight")] + ".dequant"]
                if name[: -len(".weight")] + ".dequant" in full
                else full[name]
            ).float()
        model.load_state_dict(sd, strict=False)
        model.tie_weights()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())
