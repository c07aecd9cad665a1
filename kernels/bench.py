"""Benchmark int8_matmul on the BLOOM-176B shapes per rank (H100/H200), in one run:

    PYTHONPATH=kernels python3 kernels/bench.py --tp 8 --out bench.md --json bench.json

For every shape and M: ours (what the dispatcher picks), our Triton tile kernel alone, our Triton dequantize
plus cuBLAS (whole weight, and in chunks of output channels sized to stay in L2), eager PyTorch
dequantize-then-matmul, cuBLAS bf16 on weights kept dequantized in bf16; our
effective bandwidth as a fraction of the measured device-to-device copy bandwidth; the error against the
fp32 reference. Then the targets of issue 6 and a projection of BLOOM-176B decode at batch 1 on 8 GPUs.

Method: every variant is warmed up (Triton compiles, cuBLAS handles), then a CUDA graph
of enough calls to run >= 5 ms is captured and replayed; the time per call is the median replay / calls.
Weights and inputs rotate over enough copies to span 4x the L2 cache, so no call finds its weight in L2.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import torch
import triton

from bloom_kernels import Plan, int8_matmul, launch, plan_for
from bloom_kernels.plan import CUBLAS_MIN_M, tile_plan
from bloom_kernels.projection import project, projection_table

HIDDEN = 14336
HEADS = 112
HEAD_DIM = 128
VOCAB = 250880
M_VALUES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 2048, 4096]
GRAPH_MS = 5.0
REPLAYS = 15


def shapes(tp: int) -> dict[str, tuple[int, int]]:
    """name -> (K, N) per rank: column-parallel qkv and h-to-4h, row-parallel dense and 4h-to-h, vocab-parallel head."""
    return {
        "qkv": (HIDDEN, 3 * HIDDEN // tp),
        "dense": (HIDDEN // tp, HIDDEN),
        "h_to_4h": (HIDDEN, 4 * HIDDEN // tp),
        "4h_to_h": (4 * HIDDEN // tp, HIDDEN),
        "lm_head": (HIDDEN, VOCAB // tp),
    }


def time_us(call: Callable[[int], object], copies: int) -> float:
    """Median time per call in µs; call(i) uses the i-th of `copies` input sets (see the module docstring)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the default stream, as graph capture wants
        for i in range(copies):
            call(i)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for i in range(copies):
        call(i)
    end.record()
    end.synchronize()
    per_call_ms = start.elapsed_time(end) / copies
    calls = copies * max(1, math.ceil(GRAPH_MS / per_call_ms / copies))
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for j in range(calls):
            call(j % copies)
    graph.replay()
    times = []
    for _ in range(REPLAYS):
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    del graph
    return statistics.median(times) * 1e3 / calls


def copy_bandwidth() -> float:
    """Device-to-device copy of 2 GiB, bytes read plus written per second."""
    src = torch.randint(-128, 128, (1 << 31,), dtype=torch.int8, device="cuda")
    dst = torch.empty_like(src)
    us = time_us(lambda _: dst.copy_(src), 1)
    return 2 * src.numel() / (us * 1e-6)


def bf16_gemm_tflops() -> float:
    a, b = (torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    return 2 * 8192**3 / (time_us(lambda _: a @ b, 1) * 1e-6) / 1e12


@dataclass
class Row:
    tp: int
    shape: str
    k: int
    n: int
    m: int
    kernel: str
    ours_us: float
    tile_us: float
    dq_cublas_us: float
    dq_chunked_us: float
    eager_dq_us: float
    cublas_bf16_us: float
    bw_fraction: float
    rel_err: float

    @property
    def speedup(self) -> float:
        return self.cublas_bf16_us / self.ours_us


def rel_err(y: torch.Tensor, x: torch.Tensor, w: torch.Tensor, s: torch.Tensor, rows: int = 1024) -> float:
    """Error of the first `rows` output channels against the fp32 reference."""
    ref = x.float() @ (w[:rows].float() * s[:rows, None].float()).T
    return ((y[:, :rows].float() - ref).norm() / ref.norm()).item()


def weights(k: int, n: int, l2: int) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """int8 weights and scales, and the same weights dequantized to bf16, each in enough copies to span 4x L2."""
    copies = max(1, math.ceil(4 * l2 / (n * k)))
    w = [torch.randint(-128, 128, (n, k), dtype=torch.int8, device="cuda") for _ in range(copies)]
    s = [(torch.rand(n, device="cuda") * 2e-3 + 1e-4).to(torch.float16) for _ in range(copies)]
    wb = [
        (w[i % copies].to(torch.float32) * s[i % copies].float()[:, None]).to(torch.bfloat16)
        for i in range(max(1, math.ceil(4 * l2 / (2 * n * k))))
    ]
    return w, s, wb


def bench_shape(tp: int, name: str, k: int, n: int, ms: list[int], bw: float, l2: int, sms: int) -> list[Row]:
    w, s, wb = weights(k, n, l2)
    return [bench_m(tp, name, m, w, s, wb, bw, l2, sms) for m in ms]


def candidates(p: Plan) -> list[Plan]:
    """Tiles around a plan, for --sweep."""
    if p.kernel == "gemv":
        grid = itertools.product((8, 16, 32, 64), (256, 512), (1, 2, 4))
        return [replace(p, block_n=bn, block_k=bk, split_k=sk) for bn, bk, sk in grid]
    grid = itertools.product((32, 64, 128), (64, 128, 256), (1, 2, 4, 8))
    return [replace(p, block_n=bn, block_k=bk, split_k=sk) for bn, bk, sk in grid]


def sweep(tp: int, name: str, k: int, n: int, ms: list[int], l2: int) -> list[str]:
    """One markdown row per M < CUBLAS_MIN_M: the planned tiles and the fastest candidate around them."""
    w, s, _ = weights(k, n, l2)
    rows = []
    for m in (m for m in ms if m < CUBLAS_MIN_M):
        planned, times = sweep_m(m, w, s)
        best = min(times, key=lambda c: times[c])
        rows.append(
            f"| {tp} | {name} | {m} | {tiles(planned)} | {times[planned]:.1f} | {tiles(best)} | {times[best]:.1f} |"
        )
        print(rows[-1], file=sys.stderr)
    return rows


def sweep_m(m: int, w: list[torch.Tensor], s: list[torch.Tensor]) -> tuple[Plan, dict[Plan, float]]:
    """The plan for M and the time of it and of every candidate around it."""
    x = [torch.randn(m, w[0].shape[1], device="cuda", dtype=torch.bfloat16) for _ in w]
    planned = plan_for(x[0], w[0], s[0])

    def timed(p: Plan) -> float:
        return time_us(lambda i: launch.run(p, x[i], w[i], s[i], None), len(w))

    return planned, {p: timed(p) for p in dict.fromkeys([planned, *candidates(planned)])}


def tiles(p: Plan) -> str:
    return f"{p.kernel} {p.block_m}x{p.block_n}x{p.block_k} split {p.split_k}"


def bench_m(
    tp: int,
    name: str,
    m: int,
    w: list[torch.Tensor],
    s: list[torch.Tensor],
    wb: list[torch.Tensor],
    bw: float,
    l2: int,
    sms: int,
) -> Row:
    """One table row: all variants at one M, weights rotating over the copies in w/s (int8) and wb (bf16)."""
    n, k = w[0].shape
    copies = len(w)
    x = [torch.randn(m, k, device="cuda", dtype=torch.bfloat16) for _ in range(max(copies, len(wb)))]
    tile = tile_plan(m, n, k, 0, sms)
    ours = time_us(lambda i: int8_matmul(x[i], w[i], s[i]), copies)
    tile_us = time_us(lambda i: launch.tile(tile, x[i], w[i], s[i], None), copies)
    dq = time_us(lambda i: launch.dequant_matmul(x[i], w[i], s[i], None), copies)
    chunk = max(256, l2 // 2 // (2 * k) // 256 * 256)  # bf16 scratch chunk of about half the L2
    dq_chunked = time_us(lambda i: launch.dequant_matmul(x[i], w[i], s[i], None, chunk), copies)
    eager = time_us(lambda i: x[i] @ (w[i].to(torch.bfloat16) * s[i].to(torch.bfloat16)[:, None]).T, copies)
    cublas = time_us(lambda i: x[i] @ wb[i].T, len(wb))
    moved = n * k + 2 * n + 2 * m * k + 2 * m * n
    err = rel_err(int8_matmul(x[0], w[0], s[0]), x[0], w[0], s[0])
    kernel = plan_for(x[0], w[0], s[0]).kernel
    print(f"tp={tp} {name} m={m}: ours {ours:.1f} us ({kernel}), cuBLAS bf16 {cublas:.1f} us", file=sys.stderr)
    bw_fraction = moved / (ours * 1e-6) / bw
    return Row(tp, name, k, n, m, kernel, ours, tile_us, dq, dq_chunked, eager, cublas, bw_fraction, err)


def layer_extras_us(tp: int, context: int) -> float:
    """The rest of one decode layer at batch 1 besides the four matmuls and the all-reduces: ALiBi attention
    over `context` cached tokens (SDPA), two layer norms, GELU, two residual adds."""
    heads, dev, bf = HEADS // tp, "cuda", torch.bfloat16
    q = torch.randn(1, heads, 1, HEAD_DIM, device=dev, dtype=bf)
    kv = [torch.randn(1, heads, context, HEAD_DIM, device=dev, dtype=bf) for _ in range(2)]
    alibi = torch.randn(1, heads, 1, context, device=dev, dtype=bf)
    h = torch.randn(1, HIDDEN, device=dev, dtype=bf)
    ff = torch.randn(1, 4 * HIDDEN // tp, device=dev, dtype=bf)
    norm_w, norm_b = torch.ones(HIDDEN, device=dev, dtype=bf), torch.zeros(HIDDEN, device=dev, dtype=bf)

    def layer(_: int) -> torch.Tensor:
        a = torch.nn.functional.layer_norm(h, (HIDDEN,), norm_w, norm_b)
        o = torch.nn.functional.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=alibi)
        r = h + a
        b = torch.nn.functional.layer_norm(r, (HIDDEN,), norm_w, norm_b)
        g = torch.nn.functional.gelu(ff, approximate="tanh")
        return r + b + o.sum() + g.sum()

    return time_us(layer, 1)


def table(rows: list[Row]) -> str:
    lines = [
        (
            "| TP | shape (K→N) | M | ours µs | kernel | Triton tile µs | Triton dequant + cuBLAS µs "
            "| same, L2-sized chunks µs | eager dequant + matmul µs | cuBLAS bf16 µs | speedup vs cuBLAS bf16 "
            "| BW / copy BW | rel err |"
        ),
        "| ---: | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        cells = [f"{r.tp}", f"{r.shape} ({r.k}→{r.n})", f"{r.m}", f"{r.ours_us:.1f}", r.kernel]
        cells += [f"{t:.1f}" for t in (r.tile_us, r.dq_cublas_us, r.dq_chunked_us, r.eager_dq_us, r.cublas_bf16_us)]
        cells += [f"{r.speedup:.2f}x", f"{r.bw_fraction:.0%}", f"{r.rel_err:.1e}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets(rows: list[Row]) -> str:
    """Issue 6's targets, one line each, over the four layer matmuls (not the LM head)."""
    layer = [r for r in rows if r.shape != "lm_head"]
    checks = [
        ("M=1: >= 85% of copy bandwidth", [r for r in layer if r.m == 1], lambda r: r.bw_fraction >= 0.85),
        ("M=1: >= 1.8x cuBLAS bf16", [r for r in layer if r.m == 1], lambda r: r.speedup >= 1.8),
        ("M<=16: >= 1.6x cuBLAS bf16", [r for r in layer if r.m <= 16], lambda r: r.speedup >= 1.6),
        ("M>=2048: >= 0.9x cuBLAS bf16", [r for r in layer if r.m >= 2048], lambda r: r.speedup >= 0.9),
    ]
    lines = []
    for label, subset, ok in checks:
        if subset:
            misses = [f"tp={r.tp} {r.shape} m={r.m}" for r in subset if not ok(r)]
            lines.append(f"- {label}: {'PASS' if not misses else 'MISS (' + ', '.join(misses) + ')'}")
    return "\n".join(lines)


def projection(rows: list[Row], extras_us: float, allreduce_us: list[float]) -> str:
    at1 = {r.shape: r for r in rows if r.tp == 8 and r.m == 1}
    layer = [at1[name] for name in ("qkv", "dense", "h_to_4h", "4h_to_h")]
    entries = []
    for ar in allreduce_us:
        ours = project([r.ours_us for r in layer], extras_us, ar, at1["lm_head"].ours_us)
        bf16 = project([r.cublas_bf16_us for r in layer], extras_us, ar, at1["lm_head"].cublas_bf16_us)
        entries += [(f"ours int8, all-reduce {ar:g} µs", ours), (f"cuBLAS bf16, all-reduce {ar:g} µs", bf16)]
    return projection_table(entries)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tp", type=int, nargs="+", default=[8], help="tensor-parallel sizes (8 gives the projection)")
    ap.add_argument("--m", type=int, nargs="+", default=M_VALUES)
    ap.add_argument("--context", type=int, default=1024, help="cached tokens for the attention in the projection")
    ap.add_argument(
        "--allreduce-us",
        type=float,
        nargs="+",
        default=[22.0, 8.0],
        help="all-reduce latency assumed per 28 KB message (NCCL ~22, one-shot custom ~8 on 8xH100)",
    )
    ap.add_argument("--out", help="write the markdown report here too")
    ap.add_argument("--json", help="write the raw rows here")
    ap.add_argument("--sweep", action="store_true", help="instead: time tiles around each plan (M < CUBLAS_MIN_M)")
    args = ap.parse_args()

    props = torch.cuda.get_device_properties(0)
    if args.sweep:
        lines = [
            "| TP | shape | M | planned | µs | fastest candidate | µs |",
            "| ---: | --- | ---: | --- | ---: | --- | ---: |",
        ]
        for tp in args.tp:
            for name, (k, n) in shapes(tp).items():
                lines += sweep(tp, name, k, n, args.m, props.L2_cache_size)
        print("\n".join(lines))
        return
    bw, tflops = copy_bandwidth(), bf16_gemm_tflops()
    rows = []
    for tp in args.tp:
        for name, (k, n) in shapes(tp).items():
            rows += bench_shape(tp, name, k, n, args.m, bw, props.L2_cache_size, props.multi_processor_count)
            torch.cuda.empty_cache()
    header = [
        (
            f"device: {props.name}, {props.multi_processor_count} SMs, L2 {props.L2_cache_size >> 20} MiB, "
            f"{props.total_memory / 2**30:.0f} GiB"
        ),
        f"torch {torch.__version__}, triton {triton.__version__}, CUDA {torch.version.cuda}",
        f"command: {' '.join(sys.argv)}",
        f"measured device-to-device copy bandwidth: {bw / 1e12:.2f} TB/s (read + write)",
        f"bf16 GEMM 8192³: {tflops:.0f} TFLOPS",
    ]
    report = ["\n".join(f"- {h}" for h in header), table(rows), "Targets:\n" + targets(rows)]
    if 8 in args.tp and 1 in args.m:
        extras = layer_extras_us(8, args.context)
        report.append(
            f"Decode projection, BLOOM-176B, batch 1, TP=8 (70 layers x 4 matmuls at M=1, attention+rest "
            f"{extras:.1f} µs/layer at {args.context} cached tokens, 140 all-reduces, LM head):\n\n"
            + projection(rows, extras, args.allreduce_us)
        )
    text = "\n\n".join(report)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "rows": [asdict(r) for r in rows]}, f, indent=1)


if __name__ == "__main__":
    main()
