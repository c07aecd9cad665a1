"""Prometheus text exposition (format 0.0.4) without a client library.

A `Metrics` holds one process's series; `render` writes any list of samples (a rank's, or a launcher's
merged with those of all its ranks) with one HELP and TYPE line per family.
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
    "bloom_worker_requests_total": ("counter", "HTTP API requests by path and status code."),
    "bloom_worker_prompt_tokens_total": ("counter", "Prompt tokens processed."),
    "bloom_worker_generated_tokens_total": ("counter", "Tokens generated."),
    "bloom_worker_batches_total": ("counter", "Batches run."),
    "bloom_worker_batch_rows_total": ("counter", "Requests run in batches (rows / batches = mean batch size)."),
    "bloom_worker_batch_seconds": ("summary", "Wall time of a batch."),
    "bloom_worker_request_seconds": ("summary", "Wall time of an API request."),
    "bloom_worker_queue_depth": ("gauge", "Requests waiting for a batch."),
}


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    body = ",".join(
        f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in sorted(labels.items())
    )
    return "{" + body + "}"


def family(name: str) -> str:
    for suffix in ("_sum", "_count"):
        base = name.removesuffix(suffix)
        if base != name and HELP.get(base, ("",))[0] == "summary":
            return base
    return name


def render(samples: Iterable[Sample]) -> str:
    by_family: dict[str, list[tuple[str, str, float]]] = {}
    for name, labels, value in samples:
        by_family.setdefault(family(name), []).append((name, _labels(labels), value))
    out: list[str] = []
    for fam, (kind, text) in HELP.items():
        if fam not in by_family:
            continue
        out.append(f"# HELP {fam} {text}")
        out.append(f"# TYPE {fam} {kind}")
        out.extend(f"{n}{labels} {v:.17g}" for n, labels, v in sorted(by_family[fam]))
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
        self._add(name + "_sum", labels, value, False)
        self._add(name + "_count", labels, 1.0, False)

    def samples(self) -> list[Sample]:
        with self._lock:
            return [(name, dict(labels), v) for (name, labels), v in self._values.items()]

    def render(self) -> str:
        return render(self.samples())
