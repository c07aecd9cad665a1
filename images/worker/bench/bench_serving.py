"""Serving benchmark (not a test): the old static-batching engine against the new one, same model, same load.

    .venv/bin/python images/worker/bench/bench_serving.py [--rate 1.0] [--duration 60 | --requests N]
        [--seed 0] [--short-frac 0.8] [--vocab 250880 --hidden 512 --layers 4 --heads 8]
        [--old-rev 1efd44e] [--new-dir DIR | --new-rev REV] [--sides old,new] [--rounds 1] [--out results.json]
    .venv/bin/python images/worker/bench/bench_serving.py --table results.json   # the markdown table again

1. Model: a random BLOOM (transformers' BloomConfig, BLOOM's vocabulary of 250880 by default, so the LM
   head and the logits path cost what they cost on BLOOM) with a WordLevel tokenizer (one word per id),
   converted to TP=2 shards. The embedding rows of the special ids 0-3 (unk, bos, eos, pad) are zero, so
   their logit is exactly 0 and greedy decoding never picks them (the maximum over 250k random logits is
   positive): the old `/v1/completions` cannot disable EOS (only its `/generate` has `stop_at_eos`), and
   so that both sides get the same request body, no EOS field is sent; instead every response must carry
   exactly the asked number of tokens with finish_reason "length", or the run fails. Test data lives in
   a temporary directory, never in the repository.
2. Sides: OLD is `git archive` of --old-rev (images/worker, kernels, contract) in the temporary
   directory; NEW is --new-dir (a directory holding images/worker and kernels; default this working
   tree) or `git archive` of --new-rev. Each runs with its own `images/worker` and `kernels` first on
   PYTHONPATH (before the installed editable package). Shards are converted by each side's own
   converter, once if the two sides' format.py, convert.py and convert_hf.py are identical.
3. Group: one pod of 2 ranks (NPROC_PER_NODE=2, gloo on 127.0.0.1), started as the operator starts it:
   `python -m bloom_worker.main` with the contract's variables, no RANK (so it is the launcher, which
   starts the ranks); OMP_NUM_THREADS=1 per rank. One side at a time: start, probe, warm up, load, stop.
4. Probe: a streamed request of the exact body shape used (model, token-id prompt, max_tokens,
   temperature 0, stream) must answer 200 with exactly max_tokens tokens, or the benchmark stops with the
   request and the response. Two more record (informational, not used by the load) whether the side
   refuses an unknown field (the old API accepts anything, so an `ignore_eos` it does not know would be
   silently dropped there) and what it answers to `ignore_eos: true`.
5. Load: a seeded schedule, identical for both sides: Poisson arrivals at --rate per second, each request
   short (prompt of --short-prompt ids, --short-new new tokens) with probability --short-frac, else long
   (--long-prompt ids, --long-new new tokens); lengths uniform in their ranges. Each request is one
   thread with its own HTTP connection, started at its arrival time; `POST /v1/completions` with
   `stream: true`; time to first token (TTFT) is the time from sending to the first SSE chunk carrying a
   token; inter-token latency (ITL) the gaps between token chunks of a request.
6. Report per side: output tokens/s and requests/s over the run (first arrival to last completion),
   TTFT p50/p99 of short and of long requests, ITL p50/p99, end-to-end latency; ratios new/old
   (throughput) and old/new (p99 TTFT of short requests). JSON on stdout and in --out; the markdown
   table on stderr. The machine's load average and CPU use (ours, and everything else) during each run
   are recorded: the machine may be shared.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
TP = 2
SPECIAL_IDS = (0, 1, 2, 3)  # unk, bos, eos, pad (BloomConfig's bos/eos/pad and the tokenizer's unk)
CONVERTER_FILES = ("format.py", "convert.py", "convert_hf.py")


class BenchError(RuntimeError):
    pass


# --- workload --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    index: int
    kind: str  # "short" | "long"
    arrival_s: float
    prompt: list[int]
    max_tokens: int


@dataclass
class Outcome:
    index: int
    kind: str
    arrival_s: float
    prompt_len: int
    max_tokens: int
    sent_s: float = 0.0  # relative to the run's start
    ttft_s: float | None = None
    e2e_s: float | None = None
    tokens: int = 0
    chunk_gaps_s: list[float] = field(default_factory=list)
    finish_reason: str | None = None
    usage_completion_tokens: int | None = None
    status: int | None = None
    error: str | None = None


def make_workload(
    n: int | None,
    duration: float | None,
    rate: float,
    short_frac: float,
    short_prompt: tuple[int, int],
    short_new: tuple[int, int],
    long_prompt: tuple[int, int],
    long_new: tuple[int, int],
    vocab: int,
    seed: int,
) -> list[Planned]:
    rng = random.Random(seed)
    out: list[Planned] = []
    t = 0.0
    while True:
        if n is not None and len(out) >= n:
            break
        if n is None and duration is not None and t > duration:
            break
        short = rng.random() < short_frac
        p_lo, p_hi = short_prompt if short else long_prompt
        g_lo, g_hi = short_new if short else long_new
        plen = rng.randint(p_lo, p_hi)
        prompt = [rng.randrange(len(SPECIAL_IDS), vocab) for _ in range(plen)]
        out.append(Planned(len(out), "short" if short else "long", t, prompt, rng.randint(g_lo, g_hi)))
        t += rng.expovariate(rate)
    return out


# --- model and shards ------------------------------------------------------------------------------


def build_model(path: Path, vocab: int, hidden: int, layers: int, heads: int, seed: int) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import BloomConfig, BloomForCausalLM

    torch.manual_seed(seed)
    config = BloomConfig(vocab_size=vocab, hidden_size=hidden, n_layer=layers, n_head=heads)
    model = BloomForCausalLM(config).eval()
    with torch.no_grad():
        model.transformer.word_embeddings.weight[list(SPECIAL_IDS)] = 0.0  # never the greedy choice
    model.save_pretrained(path)
    words = {"<unk>": 0, "<s>": 1, "</s>": 2, "<pad>": 3}
    words.update({f"w{i}": i for i in range(len(words), vocab)})
    tok = Tokenizer(models.WordLevel(words, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tok.save(str(path / "tokenizer.json"))
    return path


@dataclass
class Side:
    name: str
    root: Path  # holds images/worker, kernels, contract
    origin: str  # what it was made from (a revision or a directory)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        paths = [str(self.root / "images" / "worker"), str(self.root / "kernels")]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def file_digest(self, names: Sequence[str]) -> str:
        h = hashlib.sha256()
        for n in names:
            p = self.root / "images" / "worker" / "bloom_worker" / n
            h.update(n.encode() + b"\0" + (p.read_bytes() if p.exists() else b"<missing>") + b"\0")
        return h.hexdigest()

    def check_import(self) -> None:
        code = "import bloom_worker, bloom_kernels; print(bloom_worker.__file__); print(bloom_kernels.__file__)"
        r = subprocess.run([sys.executable, "-c", code], env=self.env(), capture_output=True, text=True)
        if r.returncode != 0:
            raise BenchError(f"{self.name}: cannot import bloom_worker from {self.root}:\n{r.stderr[-2000:]}")
        for line in r.stdout.split():
            if not Path(line).resolve().is_relative_to(self.root.resolve()):
                raise BenchError(f"{self.name}: imported {line}, not from {self.root}")


def export_rev(rev: str, dest: Path) -> str:
    """The tree of `rev` (the worker, the kernels, the contract) extracted into dest; returns the commit."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", f"{rev}^{{commit}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    dest.mkdir(parents=True)
    archive = subprocess.Popen(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit, "images/worker", "kernels", "contract"],
        stdout=subprocess.PIPE,
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise BenchError(f"git archive {commit} failed")
    return commit


def convert(side: Side, hf: Path, out: Path, log: Path) -> Path:
    code = "import sys; from bloom_worker.convert import main; sys.exit(main(sys.argv[1:]))"
    with open(log, "wb") as f:
        r = subprocess.run(
            [sys.executable, "-c", code, str(hf), str(out), "--tensor-parallel", str(TP)],
            env=side.env(),
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    if r.returncode != 0:
        raise BenchError(f"{side.name}: conversion failed ({r.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
    return out


# --- a group of the worker -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_json(url: str, body: dict[str, Any] | None = None, timeout: float = 10.0) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, raw.decode(errors="replace")


def proc_tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except OSError:
                pass
    return out


def cpu_jiffies(pids: Sequence[int]) -> int:
    total = 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    vals = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    total = sum(vals[:8])
    return total - idle, total


class Group:
    """One pod of TP ranks: the launcher (`python -m bloom_worker.main` without RANK) and its ranks."""

    def __init__(self, side: Side, shards: Path, logdir: Path):
        self.side = side
        self.http_port, self.health_port, master = free_port(), free_port(), free_port()
        contract = json.loads((side.root / "contract" / "env.json").read_text())
        values = {
            "WORLD_SIZE": str(TP),
            "NNODES": "1",
            "NODE_RANK": "0",
            "NPROC_PER_NODE": str(TP),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(master),
            "BLOOM_DEPLOYMENT": "bench",
            "BLOOM_MODEL_DIR": str(shards),
            "BLOOM_TENSOR_PARALLEL_SIZE": str(TP),
            "BLOOM_GROUP": "0",
            "BLOOM_EPOCH": "1",
            "BLOOM_HTTP_PORT": str(self.http_port),
            "BLOOM_HEALTH_PORT": str(self.health_port),
            "BLOOM_RENDEZVOUS_TIMEOUT": "120",
            "BLOOM_TERMINATION_GRACE_SECONDS": "10",
        }
        for name in contract["torchrunDefaults"]:
            values[name] = values[name.removeprefix("PET_")]
        names = set(contract["torchrun"]) | set(contract["torchrunDefaults"]) | set(contract["bloom"])
        if names != set(values):
            raise BenchError(f"{side.name}: the contract's pod variables differ from ours: {names ^ set(values)}")
        env = {k: v for k, v in side.env().items() if k not in contract["process"]}
        env.update(values)
        env["BLOOM_BIND_ADDRESS"] = "127.0.0.1"
        env["OMP_NUM_THREADS"] = "1"
        self.log = logdir / f"{side.name}-pod.log"
        with open(self.log, "wb") as f:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bloom_worker.main"], env=env, stdout=f, stderr=subprocess.STDOUT
            )
        self.api = f"http://127.0.0.1:{self.http_port}"

    def output(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def wait_ready(self, timeout: float = 300.0) -> float:
        started = time.monotonic()
        deadline = started + timeout
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.side.name}: the pod exited with {self.proc.returncode}:\n{self.output()}")
            try:
                ready = http_json(f"http://127.0.0.1:{self.health_port}/readyz", timeout=2)[0] == 200
                ready = ready and http_json(self.api + "/v1/models", timeout=2)[0] == 200
            except (OSError, http.client.HTTPException):
                ready = False
            if ready:
                return time.monotonic() - started
            if time.monotonic() > deadline:
                raise BenchError(f"{self.side.name}: not ready after {timeout}s:\n{self.output()}")
            time.sleep(0.25)

    def pids(self) -> list[int]:
        return proc_tree(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            tree = self.pids()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                for pid in tree:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.proc.wait()


# --- the client ------------------------------------------------------------------------------------


def stream_completion(port: int, body: dict[str, Any], timeout: float, out: Outcome, t0: float) -> None:
    """POST /v1/completions with stream: fills `out` (TTFT at the first chunk carrying a token)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    sent = time.perf_counter()
    out.sent_s = sent - t0
    last: float | None = None
    try:
        conn.request("POST", "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        out.status = resp.status
        if resp.status != 200:
            out.error = f"HTTP {resp.status}: {resp.read()[:2000].decode(errors='replace')}"
            return
        while True:
            line = resp.readline()
            if not line:
                out.error = out.error or "stream ended without [DONE]"
                break
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            now = time.perf_counter()
            chunk = json.loads(data)
            if "error" in chunk:
                out.error = f"error chunk: {json.dumps(chunk)[:2000]}"
                break
            usage = chunk.get("usage")
            if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
                out.usage_completion_tokens = usage["completion_tokens"]
            for choice in chunk.get("choices") or []:
                ids = choice.get("token_ids")
                n = len(ids) if isinstance(ids, list) else len((choice.get("text") or "").split())
                if n:
                    if out.ttft_s is None:
                        out.ttft_s = now - sent
                    if last is not None:
                        out.chunk_gaps_s.append(now - last)
                    last = now
                    out.tokens += n
                if choice.get("finish_reason"):
                    out.finish_reason = choice["finish_reason"]
        out.e2e_s = time.perf_counter() - sent
    except (OSError, http.client.HTTPException, ValueError) as e:
        out.error = f"{type(e).__name__}: {e}"
    finally:
        conn.close()


def request_body(model: str, prompt: list[int], max_tokens: int, extra: dict[str, Any] | None = None) -> dict:
    body: dict[str, Any] = {
        "model": model,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
    }
    body.update(extra or {})
    return body


def check_outcome(side: str, body: dict[str, Any], o: Outcome) -> None:
    """A request that did not give exactly max_tokens tokens ending with "length" stops the benchmark."""
    problems = []
    if o.error:
        problems.append(o.error)
    if o.tokens != o.max_tokens:
        problems.append(f"{o.tokens} tokens streamed, {o.max_tokens} asked")
    if o.finish_reason != "length":
        problems.append(f"finish_reason {o.finish_reason!r}, expected 'length'")
    if o.usage_completion_tokens is not None and o.usage_completion_tokens != o.max_tokens:
        problems.append(f"usage.completion_tokens {o.usage_completion_tokens}, {o.max_tokens} asked")
    if problems:
        shown = {**body, "prompt": body["prompt"][:8] + (["..."] if len(body["prompt"]) > 8 else [])}
        raise BenchError(f"{side}: request {json.dumps(shown)} (prompt of {o.prompt_len} ids): {'; '.join(problems)}")


def probe(side: str, port: int, model: str) -> dict[str, Any]:
    """The exact body shape must work; records whether an unknown field is refused."""
    prompt = list(range(10, 22))
    body = request_body(model, prompt, 5)
    o = Outcome(-1, "probe", 0.0, len(prompt), 5)
    stream_completion(port, body, 120.0, o, time.perf_counter())
    check_outcome(side, body, o)
    url = f"http://127.0.0.1:{port}/v1/completions"
    out: dict[str, Any] = {"body_fields": sorted(body)}
    for what, extra in (("unknown_field", {"bench_probe_unknown_field": True}), ("ignore_eos", {"ignore_eos": True})):
        code, resp = http_json(url, request_body(model, prompt, 2, {**extra, "stream": False}), timeout=120)
        out[f"{what}_status"] = code
        out[f"{what}_response"] = resp if code != 200 else "accepted (200)"
    out["unknown_field_refused"] = out["unknown_field_status"] == 400
    return out


def run_load(port: int, model: str, plan: list[Planned], timeout: float, drain_s: float) -> tuple[list[Outcome], float]:
    outcomes = [Outcome(p.index, p.kind, p.arrival_s, len(p.prompt), p.max_tokens) for p in plan]
    threads: list[threading.Thread] = []
    t0 = time.perf_counter() + 0.2
    for p, o in zip(plan, outcomes, strict=True):
        delay = t0 + p.arrival_s - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        th = threading.Thread(
            target=stream_completion,
            args=(port, request_body(model, p.prompt, p.max_tokens), timeout, o, t0),
            daemon=True,
        )
        th.start()
        threads.append(th)
    deadline = time.perf_counter() + drain_s
    for th in threads:
        th.join(max(0.0, deadline - time.perf_counter()))
    for th, o in zip(threads, outcomes, strict=True):
        if th.is_alive():
            o.error = o.error or f"not finished {drain_s:.0f}s after the last arrival"
    return outcomes, t0


# --- statistics ------------------------------------------------------------------------------------


def pct(xs: Sequence[float], q: float) -> float | None:
    """The q-th percentile, linear between closest ranks (numpy's default)."""
    if not xs:
        return None
    s = sorted(xs)
    k = (len(s) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summarize(outcomes: Sequence[Outcome], wall_s: float) -> dict[str, Any]:
    ok = [o for o in outcomes if o.error is None]
    tokens = sum(o.tokens for o in ok)

    def ttft(kind: str) -> list[float]:
        return [o.ttft_s for o in ok if o.kind == kind and o.ttft_s is not None]

    gaps = [g for o in ok for g in o.chunk_gaps_s]
    e2e = [o.e2e_s for o in ok if o.e2e_s is not None]
    s, lg = ttft("short"), ttft("long")
    statuses: dict[str, int] = {}
    for o in outcomes:
        key = "ok" if o.error is None else str(o.status or "no response")
        statuses[key] = statuses.get(key, 0) + 1
    return {
        "requests": len(outcomes),
        "completed": len(ok),
        "failed": len(outcomes) - len(ok),
        "statuses": statuses,
        "short_requests": sum(o.kind == "short" for o in outcomes),
        "long_requests": sum(o.kind == "long" for o in outcomes),
        "wall_s": wall_s,
        "output_tokens": tokens,
        "output_tokens_per_s": tokens / wall_s if wall_s > 0 else None,
        "requests_per_s": len(ok) / wall_s if wall_s > 0 else None,
        "ttft_short_p50_s": pct(s, 50),
        "ttft_short_p99_s": pct(s, 99),
        "ttft_short_max_s": max(s) if s else None,
        "ttft_long_p50_s": pct(lg, 50),
        "ttft_long_p99_s": pct(lg, 99),
        "itl_p50_s": pct(gaps, 50),
        "itl_p99_s": pct(gaps, 99),
        "e2e_p50_s": pct(e2e, 50),
        "e2e_p99_s": pct(e2e, 99),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


# --- one side --------------------------------------------------------------------------------------


def bench_side(side: Side, shards: Path, plan: list[Planned], args: argparse.Namespace, logdir: Path) -> dict:
    loadavg_before = os.getloadavg()
    started = time.monotonic()
    group = Group(side, shards, logdir)
    try:
        ready_s = group.wait_ready()
        status, models = http_json(group.api + "/v1/models")
        model = models["data"][0]["id"]
        probed = probe(side.name, group.http_port, model)
        # warm-up, not measured: one short and one long request, one after the other
        for kind, plen, new in (("short", 12, 8), ("long", args.long_prompt[1], 16)):
            prompt = [len(SPECIAL_IDS) + (7 * i) % (args.vocab - len(SPECIAL_IDS)) for i in range(plen)]
            body = request_body(model, prompt, new)
            o = Outcome(-1, kind, 0.0, plen, new)
            stream_completion(group.http_port, body, 300.0, o, time.perf_counter())
            check_outcome(side.name, body, o)
        print(f"[{side.name}] ready in {ready_s:.1f}s, probed, warmed up; {len(plan)} requests", file=sys.stderr)
        ours0 = cpu_jiffies(group.pids())
        client0 = os.times()
        busy0, total0 = machine_jiffies()
        la0 = os.getloadavg()
        outcomes, t0 = run_load(group.http_port, model, plan, args.request_timeout, args.drain_timeout)
        busy1, total1 = machine_jiffies()
        client1 = os.times()
        ours1 = cpu_jiffies(group.pids())
        la1 = os.getloadavg()
        ends = [o.sent_s + o.e2e_s for o in outcomes if o.e2e_s is not None]
        wall = max(ends) if ends else time.perf_counter() - t0
        for p, o in zip(plan, outcomes, strict=True):
            if o.error is None:
                check_outcome(side.name, request_body(model, p.prompt, p.max_tokens), o)
        hz = os.sysconf("SC_CLK_TCK")
        ncpu = os.cpu_count() or 1
        span = (total1 - total0) / ncpu / hz  # seconds of wall time the jiffies cover
        workers_cpu = (ours1 - ours0) / hz
        client_cpu = (client1.user + client1.system) - (client0.user + client0.system)
        machine_cpu = (busy1 - busy0) / hz
        failed = [o for o in outcomes if o.error is not None]
        if failed:
            print(f"[{side.name}] {len(failed)} requests failed, first: {failed[0].error}", file=sys.stderr)
        return {
            "side": side.name,
            "origin": side.origin,
            "model_id": model,
            "ready_s": ready_s,
            "probe": probed,
            "summary": summarize(outcomes, wall),
            "machine": {
                "loadavg_before_start": loadavg_before,
                "loadavg_run_start": la0,
                "loadavg_run_end": la1,
                "cpus": ncpu,
                "span_s": span,
                "cpu_s_workers": workers_cpu,
                "cpu_s_client": client_cpu,
                "cpu_s_machine": machine_cpu,
                "cpu_s_others": max(0.0, machine_cpu - workers_cpu - client_cpu),
            },
            "outcomes": [rounded(asdict(o)) for o in outcomes],
            "seconds_total": time.monotonic() - started,
        }
    except BaseException:
        print(f"[{side.name}] pod log tail:\n{group.output()}", file=sys.stderr)
        raise
    finally:
        group.stop()


def rounded(v: Any) -> Any:
    """Floats to microseconds (the raw JSON stays small)."""
    if isinstance(v, float):
        return round(v, 6)
    if isinstance(v, dict):
        return {k: rounded(x) for k, x in v.items()}
    if isinstance(v, list):
        return [rounded(x) for x in v]
    return v


def combine(runs: list[dict]) -> dict[str, Any]:
    """Several rounds of one side pooled: all requests, walls added."""
    outs = [Outcome(**o) for r in runs for o in r["outcomes"]]
    summary = summarize(outs, sum(r["summary"]["wall_s"] for r in runs))
    span = sum(r["machine"]["span_s"] for r in runs)
    for who in ("workers", "client", "others"):  # mean cores busy during the load, by whom
        summary[f"cores_{who}"] = sum(r["machine"][f"cpu_s_{who}"] for r in runs) / span if span > 0 else None
    summary["loadavg_1m_at_starts"] = [r["machine"]["loadavg_run_start"][0] for r in runs]
    return summary


# --- markdown --------------------------------------------------------------------------------------


def fmt(v: float | None, scale: float = 1.0, digits: int = 2) -> str:
    return "-" if v is None else f"{v * scale:.{digits}f}"


ROWS = (  # key, label, scale, digits, higher is better
    ("output_tokens_per_s", "output tokens/s", 1.0, 1, True),
    ("requests_per_s", "requests/s", 1.0, 3, True),
    ("ttft_short_p50_s", "TTFT short p50 (s)", 1.0, 2, False),
    ("ttft_short_p99_s", "TTFT short p99 (s)", 1.0, 2, False),
    ("ttft_long_p50_s", "TTFT long p50 (s)", 1.0, 2, False),
    ("ttft_long_p99_s", "TTFT long p99 (s)", 1.0, 2, False),
    ("itl_p50_s", "inter-token latency p50 (ms)", 1000.0, 1, False),
    ("itl_p99_s", "inter-token latency p99 (ms)", 1000.0, 1, False),
    ("e2e_p50_s", "request latency p50 (s)", 1.0, 2, False),
    ("wall_s", "run wall time (s)", 1.0, 1, False),
)
INFO_ROWS = (  # not compared
    ("cores_workers", "cores busy: the worker group", 2),
    ("cores_others", "cores busy: other processes", 2),
)


def table(result: dict[str, Any]) -> str:
    """Markdown: one row per metric; the ratio is new/old for rates, old/new for times (> 1: new better)."""
    engines = result["engines"]
    names = [n for n in ("old", "new") if n in engines]
    both = len(names) == 2
    head = "| metric | " + " | ".join(names) + (" | ratio (> 1: new better) |" if both else " |")
    rows = [head, "| --- " * (len(names) + 1 + both) + "|"]
    for key, label, scale, digits, higher in ROWS:
        vals = [engines[n].get(key) for n in names]
        cells = [fmt(v, scale, digits) for v in vals]
        if both:
            r = ratio(vals[1], vals[0]) if higher else ratio(vals[0], vals[1])
            cells.append("-" if r is None else f"{r:.2f}x ({'new/old' if higher else 'old/new'})")
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    for key, label, digits in INFO_ROWS:
        rows.append(
            f"| {label} | "
            + " | ".join(fmt(engines[n].get(key), 1.0, digits) for n in names)
            + (" | |" if both else " |")
        )
    counts = [f"{engines[n]['requests']} ({engines[n]['failed']})" for n in names]
    rows.append("| requests (failed) | " + " | ".join(counts) + (" | |" if both else " |"))
    if both:
        r = result["ratios"]
        rows += [
            "",
            f"Throughput new/old: **{fmt(r['throughput_new_over_old'])}x** (goal >= 1.5); "
            f"p99 TTFT of short requests old/new: **{fmt(r['p99_short_ttft_old_over_new'])}x** (goal >= 5).",
        ]
    return "\n".join(rows)


# --- main ------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    def pair(s: str) -> tuple[int, int]:
        lo, _, hi = s.partition(":")
        a, b = int(lo), int(hi or lo)
        if not 1 <= a <= b:
            raise argparse.ArgumentTypeError(f"{s!r}: want LO:HI with 1 <= LO <= HI")
        return a, b

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=1.0, help="mean arrivals per second (Poisson)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--duration", type=float, help="seconds of arrivals (then the run drains)")
    g.add_argument("--requests", type=int, help="number of requests (default 60 unless --duration)")
    ap.add_argument("--seed", type=int, default=0, help="seeds the model and the workload")
    ap.add_argument("--short-frac", type=float, default=0.8, help="share of short requests")
    ap.add_argument("--short-prompt", type=pair, default=(8, 16), help="LO:HI prompt ids of a short request")
    ap.add_argument("--short-new", type=pair, default=(8, 8), help="LO:HI new tokens of a short request")
    ap.add_argument("--long-prompt", type=pair, default=(200, 500), help="LO:HI prompt ids of a long request")
    ap.add_argument("--long-new", type=pair, default=(128, 256), help="LO:HI new tokens of a long request")
    ap.add_argument("--vocab", type=int, default=250880, help="model: vocabulary (BLOOM's by default)")
    ap.add_argument("--hidden", type=int, default=512, help="model: hidden size")
    ap.add_argument("--layers", type=int, default=4, help="model: layers")
    ap.add_argument("--heads", type=int, default=8, help="model: attention heads (a multiple of 2)")
    ap.add_argument("--old-rev", default="1efd44e", help="revision of the old (static batching) worker")
    n = ap.add_mutually_exclusive_group()
    n.add_argument("--new-dir", type=Path, help="a tree holding images/worker and kernels (default: this one)")
    n.add_argument("--new-rev", help="a revision for the new worker instead of --new-dir")
    ap.add_argument("--rounds", type=int, default=1, help="run the sides in turn this many times")
    ap.add_argument("--sides", default="old,new", help="which sides, in this order (old,new; new,old; old; new)")
    ap.add_argument("--request-timeout", type=float, default=900.0, help="socket timeout of one request")
    ap.add_argument("--drain-timeout", type=float, default=900.0, help="seconds after the last arrival")
    ap.add_argument("--workdir", type=Path, help="keep the model, shards and logs here (default: a temp dir)")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    ap.add_argument("--table", type=Path, metavar="RESULT_JSON", help="only print the markdown table of a result")
    args = ap.parse_args(argv)
    if args.requests is None and args.duration is None:
        args.requests = 60
    if args.heads % TP or args.hidden % args.heads:
        ap.error(f"--heads must be a multiple of {TP} and divide --hidden")
    if not 0.0 <= args.short_frac <= 1.0 or args.rate <= 0 or args.rounds < 1:
        ap.error("--short-frac in [0, 1], --rate > 0, --rounds >= 1")
    args.sides = [x.strip() for x in args.sides.split(",") if x.strip()]
    if not args.sides or not set(args.sides) <= {"old", "new"} or len(set(args.sides)) != len(args.sides):
        ap.error("--sides: old and/or new, comma-separated, each once")
    return args


def make_sides(args: argparse.Namespace, work: Path) -> dict[str, Side]:
    old_commit = export_rev(args.old_rev, work / "old-tree")
    sides = {"old": Side("old", work / "old-tree", f"{args.old_rev} ({old_commit})")}
    if args.new_rev:
        new_commit = export_rev(args.new_rev, work / "new-tree")
        sides["new"] = Side("new", work / "new-tree", f"{args.new_rev} ({new_commit})")
    else:
        root = (args.new_dir or REPO).resolve()
        git = ["git", "-C", str(root)]
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", "images/worker", "kernels"], capture_output=True, text=True
        ).stdout.strip()
        sides["new"] = Side("new", root, f"{root} (HEAD {head or '?'}{', with uncommitted changes' if dirty else ''})")
    for s in sides.values():
        s.check_import()
    return sides


def dumps(v: Any, ind: str = "") -> str:
    """JSON, indented, but a list of scalars and a flat object inside a list (one request) on one line."""
    if isinstance(v, dict) and v:
        items = [f"{ind} {json.dumps(k)}: {dumps(x, ind + ' ')}" for k, x in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + ind + "}"
    if isinstance(v, list) and any(isinstance(x, dict | list) for x in v):
        flat = [isinstance(x, dict) and not any(isinstance(y, dict) for y in x.values()) for x in v]
        items = [ind + " " + (json.dumps(x) if f else dumps(x, ind + " ")) for x, f in zip(v, flat, strict=True)]
        return "[\n" + ",\n".join(items) + "\n" + ind + "]"
    return json.dumps(v)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return 0
    keep = args.workdir is not None
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bloom-bench-serving-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(uptime, file=sys.stderr)
    try:
        sides = make_sides(args, work)
        print(
            f"model: vocab {args.vocab}, hidden {args.hidden}, {args.layers} layers, {args.heads} heads",
            file=sys.stderr,
        )
        t = time.monotonic()
        hf = build_model(work / "hf", args.vocab, args.hidden, args.layers, args.heads, args.seed)
        shards = {"old": convert(sides["old"], hf, work / "shards-old", work / "convert-old.log")}
        same_converter = sides["old"].file_digest(CONVERTER_FILES) == sides["new"].file_digest(CONVERTER_FILES)
        if same_converter:
            shards["new"] = shards["old"]
        else:
            shards["new"] = convert(sides["new"], hf, work / "shards-new", work / "convert-new.log")
        how = "one conversion: same converter" if same_converter else "each side its own converter"
        print(f"model built and converted in {time.monotonic() - t:.1f}s ({how})", file=sys.stderr)
        plan = make_workload(
            args.requests,
            args.duration,
            args.rate,
            args.short_frac,
            args.short_prompt,
            args.short_new,
            args.long_prompt,
            args.long_new,
            args.vocab,
            args.seed,
        )
        runs: dict[str, list[dict]] = {name: [] for name in args.sides}
        for _ in range(args.rounds):
            for name in args.sides:
                runs[name].append(bench_side(sides[name], shards[name], plan, args, work))
        engines = {name: combine(rs) for name, rs in runs.items()}
        old, new = engines.get("old", {}), engines.get("new", {})
        result = {
            "benchmark": "bench_serving",
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "command": " ".join(
                [".venv/bin/python images/worker/bench/bench_serving.py", *(sys.argv[1:] if argv is None else argv)]
            ),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "torch": __import__("torch").__version__,
                "uptime_at_start": uptime,
                "uptime_at_end": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
            },
            "model": {
                "vocab_size": args.vocab,
                "hidden_size": args.hidden,
                "n_layer": args.layers,
                "n_head": args.heads,
                "tensor_parallel": TP,
                "seed": args.seed,
                "same_converter": same_converter,
            },
            "workload": {
                "rate_per_s": args.rate,
                "requests": len(plan),
                "duration_s": args.duration,
                "arrivals_span_s": plan[-1].arrival_s if plan else 0.0,
                "short_frac": args.short_frac,
                "short_prompt": args.short_prompt,
                "short_new": args.short_new,
                "long_prompt": args.long_prompt,
                "long_new": args.long_new,
                "short_requests": sum(p.kind == "short" for p in plan),
                "long_requests": sum(p.kind == "long" for p in plan),
                "output_tokens_asked": sum(p.max_tokens for p in plan),
                "rounds": args.rounds,
                "order": args.sides,
            },
            "sides": {name: sides[name].origin for name in args.sides},
            "engines": engines,
            "ratios": {
                "throughput_new_over_old": ratio(new.get("output_tokens_per_s"), old.get("output_tokens_per_s")),
                "requests_per_s_new_over_old": ratio(new.get("requests_per_s"), old.get("requests_per_s")),
                "p99_short_ttft_old_over_new": ratio(old.get("ttft_short_p99_s"), new.get("ttft_short_p99_s")),
                "p50_short_ttft_old_over_new": ratio(old.get("ttft_short_p50_s"), new.get("ttft_short_p50_s")),
            },
            "runs": runs,
            "seconds_total": time.time() - started,
        }
        text = dumps(rounded(result))
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text + "\n")
        print(text)
        print(table(result), file=sys.stderr)
        return 0
    except BenchError as e:
        print(f"bench_serving: {e}", file=sys.stderr)
        return 1
    finally:
        if keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
