"""Rank 0's next-token choice and logprobs, on the device that holds the gathered logits.

Logprobs are those of the model (log-softmax of the raw logits, as OpenAI and vLLM report them);
penalties, temperature, top-k and top-p only shape the distribution a token is drawn from. Rows are
processed together; only the draw itself loops, since each row has its own seeded generator.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .sequence import SamplingParams, TokenLogprob


def penalize(logits: torch.Tensor, params: SamplingParams, context: Sequence[int], generated: Sequence[int]) -> None:
    """In place, on one row [V]: OpenAI's presence/frequency penalties over the generated tokens and
    TGI's repetition penalty over the whole context."""
    if generated and (params.presence_penalty or params.frequency_penalty):
        ids = torch.tensor(generated, dtype=torch.int64, device=logits.device)
        counts = torch.bincount(ids, minlength=logits.shape[-1]).to(logits.dtype)
        logits -= params.frequency_penalty * counts + params.presence_penalty * (counts > 0).to(logits.dtype)
    if params.repetition_penalty != 1.0 and context:
        ids = torch.tensor(sorted(set(context)), dtype=torch.int64, device=logits.device)
        picked = logits[ids]
        logits[ids] = torch.where(picked > 0, picked / params.repetition_penalty, picked * params.repetition_penalty)


def filtered_probs(
    logits: torch.Tensor, temperature: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor
) -> torch.Tensor:
    """Probabilities [N, V] of softmax(logits / T) restricted to each row's top-k and top-p nucleus (the
    most likely token always stays)."""
    scaled = logits / temperature.view(-1, 1)
    sorted_logits, order = torch.sort(scaled, dim=-1, descending=True)
    rank = torch.arange(scaled.shape[-1], device=scaled.device).view(1, -1)
    drop = (top_k.view(-1, 1) > 0) & (rank >= top_k.view(-1, 1))
    probs = torch.softmax(sorted_logits.masked_fill(drop, float("-inf")), dim=-1)
    drop |= (torch.cumsum(probs, dim=-1) - probs) >= top_p.view(-1, 1)
    drop[:, 0] = False
    kept = torch.softmax(sorted_logits.masked_fill(drop, float("-inf")), dim=-1)
    return torch.zeros_like(kept).scatter_(-1, order, kept)


def choose(
    logits: torch.Tensor, params: Sequence[SamplingParams], generators: Sequence[torch.Generator | None]
) -> list[int]:
    """Next token of each row of (already penalized) logits [N, V]: the arg-max for greedy rows, a draw
    with the row's generator otherwise."""
    tokens = logits.argmax(dim=-1).tolist()
    sampled = [i for i, p in enumerate(params) if not p.greedy]
    if not sampled:
        return tokens
    dev = logits.device
    probs = filtered_probs(
        logits[sampled],
        torch.tensor([params[i].temperature for i in sampled], device=dev),
        torch.tensor([params[i].top_k for i in sampled], device=dev),
        torch.tensor([params[i].top_p for i in sampled], device=dev),
    )
    for j, i in enumerate(sampled):
        tokens[i] = int(torch.multinomial(probs[j], 1, generator=generators[i]))
    return tokens


def logprobs_of(logits: torch.Tensor, tokens: Sequence[int], top: int) -> list[TokenLogprob]:
    """Each row's model logprob of `tokens[i]` and its `top` most likely alternatives."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    picked = logp.gather(1, torch.tensor(tokens, dtype=torch.int64, device=logp.device).view(-1, 1)).view(-1)
    values, ids = logp.topk(top, dim=-1) if top else (logp[:, :0], logp[:, :0].long())
    out = []
    for i, token in enumerate(tokens):
        alts = tuple(zip(ids[i].tolist(), values[i].tolist(), strict=True))
        out.append(TokenLogprob(token=token, logprob=float(picked[i]), top=alts))
    return out


def new_generator(seed: int | None, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g
