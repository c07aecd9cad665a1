"""The worker's model (TP=1, in process) against transformers' fp32 BloomForCausalLM.

INT8 error bound. Each weight is rounded to q*s with s = absmax(row)/127, so its error e is at most
s/2 and, over a row, behaves like independent uniform noise on [-s/2, s/2]. An output y_i = w_i.x then
moves by e_i.x with standard deviation s_i/sqrt(12) * |x|, while |y_i| ~ rms(w_i) * |x|: a relative
error rho = (absmax/rms)(w_i) / (127 * sqrt(12)). For the Gaussian rows of these models (64..256
inputs) absmax/rms <= 3.5, so rho <= 0.8% per matmul. The 4 matmuls of each of L=2 layers add
independent errors to the residual stream (in quadrature): sqrt(8) * 0.8% = 2.3%; fp16 storage of
norms, biases and embeddings adds ~2^-11. LayerNorm and the tied LM head do not amplify relative
perturbations by more than ~2x here, hence the loose bound: relative L2 error of the logits <= 5%.
The tight check removes quantization from the comparison: transformers with the shard's own
(dequantized) weights must agree with the worker to fp32 accuracy (1e-4 of the logit scale).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from worker_helpers import hf_logits, local_generate, rel_err

PROMPTS = [[5, 6, 7, 8, 9, 10, 11], [100, 3, 249, 17], [42]]
LOOSE = 0.05
TIGHT = 1e-4


def worker_logits(shard_dir: Path, ids: list[int], **engine: object) -> torch.Tensor:
    """The prompt's logits as the engine computes them (paged cache, every position gathered to rank 0)."""
    return torch.tensor(local_generate(shard_dir, [ids], 0, **engine)[0]["logits"])


@pytest.mark.parametrize("which", ["a", "b"])
def test_logits_match_transformers(which: str, request: pytest.FixtureRequest) -> None:
    src = request.getfixturevalue(f"model_{which}")
    shard = request.getfixturevalue(f"shards_{which}")[1]
    for ids in PROMPTS:
        got = worker_logits(shard, ids)
        fake = hf_logits(src, ids, fake_quant_from=shard)
        orig = hf_logits(src, ids)
        assert (got - fake).abs().max() <= TIGHT * fake.abs().max(), "worker != transformers on the same int8 weights"
        err = rel_err(got, orig)
        assert err <= LOOSE, f"relative logit error {err:.4f} vs fp32 exceeds the INT8 bound {LOOSE}"
        assert err > 1e-4, "quantization should be visible at all"


def test_chunked_prefill_and_paged_cache_are_exact(shards_a: dict[int, Path]) -> None:
    """A prompt fed in chunks of 3 tokens through blocks of 2 gives the logits of the whole prompt at
    once, and greedy decoding through the cache continues it exactly."""
    ids = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    whole = worker_logits(shards_a[1], ids)
    chunked = worker_logits(shards_a[1], ids, prefill_chunk=3, block_size=2)
    assert torch.allclose(whole, chunked, atol=1e-5, rtol=0)
    out = local_generate(shards_a[1], [ids], 6, block_size=2, prefill_chunk=3)[0]["output_ids"]
    full = worker_logits(shards_a[1], ids + out[:-1])
    assert out == full[len(ids) - 1 :].argmax(-1).tolist()


def test_engine_batches_concurrent_requests_exactly(shards_a: dict[int, Path]) -> None:
    together = local_generate(shards_a[1], PROMPTS, 6)
    for p, got in zip(PROMPTS, together, strict=False):
        alone = local_generate(shards_a[1], [p], 6)[0]
        assert got["output_ids"] == alone["output_ids"]
        assert len(got["output_ids"]) == 6


def test_group_wise_scales_run_through_the_kernel(model_a: Path, tmp_path: Path) -> None:
    from worker_helpers import convert

    shard = convert(model_a, tmp_path / "g", 1, "--group-size", "16")
    ids = PROMPTS[0]
    got = worker_logits(shard, ids)
    assert (got - hf_logits(model_a, ids, fake_quant_from=shard)).abs().max() <= TIGHT * got.abs().max()
    assert rel_err(got, hf_logits(model_a, ids)) <= LOOSE


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_compute_path(dtype: torch.dtype, model_a: Path, shards_a: dict[int, Path]) -> None:
    """What a GPU runs (activations in the shard's 16-bit dtype), exercised on CPU."""
    from bloom_worker.loader import load_shard
    from bloom_worker.model import BloomTP, Comm

    model = BloomTP(load_shard(shards_a[1], 0, 1), Comm(), torch.device("cpu"), dtype=dtype)
    ids = PROMPTS[0]
    out = torch.tensor(local_generate(shards_a[1], [ids], 0, model=model)[0]["logits"])
    assert out.dtype == torch.float32
    assert rel_err(out, hf_logits(model_a, ids)) <= LOOSE
