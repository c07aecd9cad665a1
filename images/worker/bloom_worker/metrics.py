"""Prometheus text exposition (format 0.0.4) without a client library."""

from __future__ import annotations

import threading

HELP = {
    "bloom_worker_info": ("gauge", "Constant 1, labelled with the rank's identity."),
    "bloom_worker_ready": ("gauge", "1 when the shard is loaded and the communicator is up."),
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


def _labels(labels: dict[str, str] | None) -> str:
    if not labels:
        return ""
    body = ",".join(
        f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in sorted(labels.items())
    )
    return "{" + body + "}"


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[str, float]] = {}

    def _add(self, name: str, labels: dict[str, str] | None, value: float, replace: bool) -> None:
        key = _labels(labels)
        with self._lock:
            series = self._values.setdefault(name, {})
            series[key] = value if replace else series.get(key, 0.0) + value

    def inc(self, name: str, value: float = 1.0, labels: dict[str, str] | None = None) -> None:
        self._add(name, labels, value, False)

    def set(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        self._add(name, labels, value, True)

    def observe(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        self._add(name + "_sum", labels, value, False)
        self._add(name + "_count", labels, 1.0, False)

    def render(self) -> str:
        out: list[str] = []
        with self._lock:
            snapshot = {k: dict(v) for k, v in self._values.items()}
        for name, (kind, text) in HELP.items():
            series = {
                n: v
                for n, v in snapshot.items()
                if n == name or (kind == "summary" and n in (name + "_sum", name + "_count"))
            }
            if not series:
                continue
            out.append(f"# HELP {name} {text}")
            out.append(f"# TYPE {name} {kind}")
            for n in sorted(series):
                for labels, v in sorted(series[n].items()):
                    out.append(f"{n}{labels} {v:.17g}")
        return "\n".join(out) + "\n"
