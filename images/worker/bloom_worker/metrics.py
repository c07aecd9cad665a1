"""Prometheus text exposition (format 0.0.4) without a client library.

A `Metrics` holds one process's series; `render` writes any list of samples (a rank's, or a launcher's
merged with those of all its ranks) with one HELP and TYPE line per family. `observe` records a
histogram (cumulative `_bucket{le}` series over `BUCKETS`, `_sum`, `_count`) for a family declared
"histogram", else a summary (`_sum`, `_count`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

Labels = dict[str, str]
Sample = tuple[str, Labels, float]

HELP = {
    "bloom_pod_info": ("gauge", "Constant 1, labelled with the pod's identity (served by the launcher)."),
    "bloom_pod_ready": ("gauge", "1 when every local rank of the pod is ready and none is stuck (/readyz)."),
    "bloom_pod_live": ("gauge", "1 when no local rank of the pod is stuck (/livez)."),
    "bloom_worker_info": ("gauge", "Constant 1, labelled with the rank's identity."),
    "bloom_worker_ready": ("gauge", "1 when the shard is loaded and the communicator is up."),
    "bloom_worker_report_age_seconds": ("gauge", "Seconds since the rank last reported its state."),
    "bloom_worker_progress_age_seconds": ("gauge", "Seconds since the rank's engine loop last made progress."),
    "bloom_worker_shard_load_seconds": ("gauge", "Seconds spent mapping and verifying the shard."),
    "bloom_worker_shard_bytes": ("gauge", "Size of this rank's shard file."),
    "bloom_worker_requests_total": ("counter", "HTTP API requests by route (a fixed set, else other) and status code."),
    "bloom_worker_request_seconds": ("histogram", "Wall time of an API request, by route."),
    "bloom_worker_time_to_first_token_seconds": ("histogram", "From a request's arrival to its first token."),
    "bloom_worker_inter_token_latency_seconds": ("histogram", "Between two tokens of one request."),
    "bloom_worker_queue_time_seconds": ("histogram", "From a request's arrival to its admission."),
    "bloom_worker_running_requests": ("gauge", "Requests in the running batch."),
    "bloom_worker_waiting_requests": ("gauge", "Requests waiting for admission."),
    "bloom_worker_kv_blocks_used": ("gauge", "KV cache blocks in use."),
    "bloom_worker_kv_blocks_total": ("gauge", "KV cache blocks."),
    "bloom_worker_prompt_tokens_total": ("counter", "Prompt tokens prefilled."),
    "bloom_worker_generated_tokens_total": ("counter", "Tokens generated."),
    "bloom_worker_preemptions_total": ("counter", "Requests preempted (KV blocks freed, recomputed later)."),
    "bloom_worker_engine_steps_total": ("counter", "Engine steps run."),
}
# seconds, for every histogram: 1 ms to 5 min
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    body = ",".join(
        f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in sorted(labels.items())
    )
    return "{" + body + "}"


def family(name: str) -> str:
    for suffix in ("_sum", "_count", "_bucket"):
        base = name.removesuffix(suffix)
        kind = HELP.get(base, ("",))[0]
        if base != name and (kind == "histogram" or (kind == "summary" and suffix != "_bucket")):
            return base
    return name


def _le(labels: Labels) -> float:
    return float(labels["le"]) if "le" in labels else 0.0


def render(samples: Iterable[Sample]) -> str:
    by_family: dict[str, list[tuple[str, str, float, str, float]]] = {}
    for name, labels, value in samples:
        rest = _labels({k: v for k, v in labels.items() if k != "le"})  # buckets in order of their bound
        by_family.setdefault(family(name), []).append((name, rest, _le(labels), _labels(labels), value))
    out: list[str] = []
    for fam, (kind, text) in HELP.items():
        if fam not in by_family:
            continue
        out.append(f"# HELP {fam} {text}")
        out.append(f"# TYPE {fam} {kind}")
        out.extend(f"{n}{labels} {v:.17g}" for n, _, _, labels, v in sorted(by_family[fam]))
    return "\n".join(out) + "\n"


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def _add(self, name: str, labels: Labels | None, value: float, replace: bool) -> None:
        key = (name, tuple(sorted((labels or {}).items())))
        with self._lock:
            self._values[key] = value if replace else self._values.get(key, 0.0) + value

    def inc(self, name: str, value: float = 1.0, labels: Labels | None = None) -> None:
        self._add(name, labels, value, False)

    def set(self, name: str, value: float, labels: Labels | None = None) -> None:
        self._add(name, labels, value, True)

    def observe(self, name: str, value: float, labels: Labels | None = None) -> None:
        if HELP.get(name, ("",))[0] == "histogram":
            for bound in (*BUCKETS, float("inf")):
                le = "+Inf" if bound == float("inf") else f"{bound:g}"
                self._add(name + "_bucket", {**(labels or {}), "le": le}, 1.0 if value <= bound else 0.0, False)
        self._add(name + "_sum", labels, value, False)
        self._add(name + "_count", labels, 1.0, False)

    def samples(self) -> list[Sample]:
        with self._lock:
            return [(name, dict(labels), v) for (name, labels), v in self._values.items()]

    def render(self) -> str:
        return render(self.samples())
