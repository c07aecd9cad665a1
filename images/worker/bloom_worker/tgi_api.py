"""Text Generation Inference's /generate and /generate_stream, plus our token-id form of /generate.

{"inputs": str, "parameters": {...}} -> {"generated_text", "output_ids", "finish_reason", "details"?}
{"input_ids": [int], ...parameters} -> the same (the parameters at the top level or in "parameters";
`stop_at_eos` false generates past the end-of-sequence token).

Sampling as TGI chooses it: greedy unless `do_sample`, or a temperature other than 1, top_k or
top_p < 1 is given (temperature 0 is greedy too). `details.finish_reason` uses TGI's words (`length`,
`eos_token`, `stop_sequence`), the top-level `finish_reason` OpenAI's (`length`, `stop`).
"""

from __future__ import annotations

from collections.abc import Sequence

from .job import Choice, Job, Model
from .openai_api import MAX_STOPS, temperature
from .output import ChoiceOutput, Delta, LogprobEntry
from .sequence import MAX_LOGPROBS, SEED_LIMIT, SamplingParams
from .validate import ApiError, Body, boolean, integer, number, obj, refuse_unknown, strings, token_ids

PARAMETERS = (
    "max_new_tokens",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "repetition_penalty",
    "frequency_penalty",
    "do_sample",
    "stop",
    "details",
    "decoder_input_details",
    "return_full_text",
    "top_n_tokens",
    "stop_at_eos",
    "best_of",
    "watermark",
)
TGI_REASONS = {"length": "length", "stop": "eos_token", "stop_sequence": "stop_sequence"}


def parameters(body: Body) -> Body:
    if "input_ids" in body:
        top = {k: v for k, v in body.items() if k not in ("input_ids", "parameters")}
        return {**top, **obj(body, "parameters")}
    refuse_unknown(body, ("inputs", "parameters"))
    return obj(body, "parameters")


def parse_generate(body: Body, model: Model, stream: bool) -> Job:
    if "input_ids" in body:
        prompt = token_ids(body["input_ids"], model.vocab_size, "input_ids")
        text = model.decode(prompt)
    elif "inputs" in body:
        if not isinstance(body["inputs"], str):
            raise ApiError(400, "inputs must be a string", "inputs")
        text, prompt = body["inputs"], model.encode(body["inputs"], "inputs")
    else:
        raise ApiError(400, "body needs input_ids (token ids) or inputs (text)", "inputs")
    p = parameters(body)
    where = "" if "input_ids" in body and "parameters" not in body else "parameters."
    refuse_unknown(p, PARAMETERS, where)
    if integer(p, "best_of", 1, 1, 1, where) != 1 or boolean(p, "watermark", False, where):
        raise ApiError(400, f"{where}best_of > 1 and watermark are not supported", where + "best_of")
    t = temperature(p, 1.0)
    top_p = number(p, "top_p", 1.0, 0.0, 1.0, where, lo_open=True)
    top_k = integer(p, "top_k", 0, 0, model.vocab_size, where) or 0
    sample = (boolean(p, "do_sample", False, where) or t != 1.0 or top_k > 0 or top_p < 1.0) and t > 0
    stops = strings(p, "stop", MAX_STOPS, where)
    if stops and model.tokenizer is None:
        raise ApiError(400, "stop strings need a tokenizer; this model directory has none", where + "stop")
    details = boolean(p, "details", False, where)
    prefill = boolean(p, "decoder_input_details", False, where)
    if prefill and not details:
        raise ApiError(400, f"{where}decoder_input_details needs details: true", where + "decoder_input_details")
    top_n = integer(p, "top_n_tokens", None, 0, MAX_LOGPROBS, where)
    max_new = integer(p, "max_new_tokens", 16, 1, model.max_context, where)
    assert max_new is not None
    model.check_length(len(prompt), max_new, where + "max_new_tokens")
    seed = integer(p, "seed", None, 0, SEED_LIMIT - 1, where)
    logprobs = (top_n or 0) if details or stream or top_n is not None else None
    params = SamplingParams(
        max_tokens=max_new,
        temperature=t if sample else 0.0,
        top_p=top_p,
        top_k=top_k,
        seed=seed,
        repetition_penalty=number(p, "repetition_penalty", 1.0, 0.0, 10.0, where, lo_open=True),
        frequency_penalty=number(p, "frequency_penalty", 0.0, -2.0, 2.0, where),
        ignore_eos=not boolean(p, "stop_at_eos", True, where),
        logprobs=logprobs,
        prompt_logprobs=(top_n or 0) if prefill else None,
    )
    full = boolean(p, "return_full_text", False, where)
    return Job(
        choices=[Choice(prompt, params)],
        shape=TgiShape(text if full else "", details, prefill, seed if sample else None),
        prompt_tokens=len(prompt),
        stream=stream,
        stops=stops,
    )


def token(e: LogprobEntry) -> dict[str, object]:
    return {"id": e.token, "text": e.text, "logprob": e.logprob, "special": False}


def top_tokens(e: LogprobEntry) -> list[dict[str, object]]:
    return [{"text": t, "logprob": v, "special": False} for t, v in e.top]


class TgiShape:
    def __init__(self, prefix: str, details: bool, prefill: bool, seed: int | None):
        self.prefix, self.details, self.prefill, self.seed = prefix, details, prefill, seed
        self.pending: dict | None = None  # a stream event waits for the next: the last one carries the end
        self.done_marker = False  # TGI's streams end without `data: [DONE]`

    def _details(self, out: ChoiceOutput, stream: bool) -> dict[str, object]:
        reason = "stop_sequence" if out.stop.stopped else TGI_REASONS.get(out.finish_reason or "", "length")
        d: dict[str, object] = {"finish_reason": reason, "generated_tokens": len(out.token_ids), "seed": self.seed}
        if not stream:
            prompt = [] if not self.prefill else out.logprobs[: len(out.prompt)]
            generated = out.logprobs[len(prompt) :]
            d["tokens"] = [token(e) for e in generated]
            d["top_tokens"] = [top_tokens(e) for e in generated]
            if self.prefill:
                d["prefill"] = [{"id": e.token, "text": e.text, "logprob": e.logprob} for e in prompt]
        return d

    def opening(self, choices: int) -> list[dict]:
        return []

    def chunk(self, out: ChoiceOutput, delta: Delta) -> list[dict]:
        events = []
        for e in delta.logprobs[len(delta.logprobs) - len(delta.token_ids) :]:
            if self.pending is not None:
                events.append(self.pending)
            self.pending = {"token": token(e), "top_tokens": top_tokens(e), "generated_text": None, "details": None}
        if out.done:
            last = self.pending or {"token": None, "top_tokens": []}
            events.append({**last, "generated_text": self.prefix + out.text, "details": self._details(out, True)})
            self.pending = None
        return events

    def usage_chunk(self, usage: dict[str, int]) -> dict | None:
        return None

    def response(self, outs: Sequence[ChoiceOutput], usage: dict[str, int]) -> dict:
        (out,) = outs
        body: dict[str, object] = {
            "generated_text": self.prefix + out.text,
            "output_ids": out.token_ids,
            "finish_reason": out.finish_reason,
        }
        if self.details:
            body["details"] = self._details(out, False)
        return body
