"""Running a Job on the engine: one Request per choice, their events fanned into one queue, each turned
into stream chunks by its ChoiceOutput and the job's Shape.

While it waits, the runner asks `gone()` (the client closed its connection) before every event, so a
request whose client left is cancelled within one engine step; a stop string cancels its request as
soon as it is seen; past the deadline (the engine's, plus a grace for an engine that never answers)
the job fails with 504. On any failure every request of the job is cancelled.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import Protocol

import torch

from .job import Job, Model
from .output import ChoiceOutput
from .sequence import Event, Failed, Finished, PromptLogprobs, QueueFull, Request, SamplingParams
from .validate import ApiError

POLL_S = 0.02
DEADLINE_GRACE_S = 2.0

Tagged = tuple[int, Event]


class ClientGone(Exception):
    """The client closed its connection: the job was cancelled."""


class FanIn(queue.Queue):
    """A request's event queue that forwards each event, tagged with the choice index, to one sink."""

    def __init__(self, tag: int, sink: queue.Queue[Tagged]):
        super().__init__()
        self.tag, self.sink = tag, sink

    def put(self, item: Event, block: bool = True, timeout: float | None = None) -> None:
        self.sink.put((self.tag, item))


class Engine(Protocol):
    """What the runner needs of bloom_worker.engine.Engine."""

    def submit(self, req: Request) -> None: ...


def submit(engine: Engine, ids: list[list[int]], params: list[SamplingParams], timeout_s: float):
    """Every request or none (a full queue cancels those already in): the requests and their sink."""
    sink: queue.Queue[Tagged] = queue.Queue()
    deadline = time.monotonic() + timeout_s
    reqs: list[Request] = []
    try:
        for i, (prompt, p) in enumerate(zip(ids, params, strict=True)):
            req = Request(ids=prompt, params=p, deadline=deadline, events=FanIn(i, sink))
            engine.submit(req)
            reqs.append(req)
    except QueueFull as e:
        cancel(reqs)
        raise ApiError(
            429, str(e), type="rate_limit_error", code="queue_full", headers={"Retry-After": str(e.retry_after_s)}
        ) from None
    except RuntimeError as e:  # the engine is shutting down
        cancel(reqs)
        raise ApiError(503, str(e), type="server_error", code="unavailable") from None
    return reqs, sink, deadline


def cancel(reqs: list[Request]) -> None:
    for r in reqs:
        r.cancel()


def next_event(sink: queue.Queue[Tagged], gone: Callable[[], bool], deadline: float, timeout_s: float) -> Tagged:
    while True:
        if gone():
            raise ClientGone()
        try:
            return sink.get(timeout=POLL_S)
        except queue.Empty:
            if time.monotonic() > deadline + DEADLINE_GRACE_S:
                raise timed_out(timeout_s) from None


def timed_out(timeout_s: float) -> ApiError:
    return ApiError(
        504, f"the request did not finish within its deadline of {timeout_s:g} s", type="timeout", code="timeout"
    )


def failure(event: Event, timeout_s: float) -> ApiError | None:
    """The error an event ends its job with (None: it does not)."""
    if isinstance(event, Failed):
        return ApiError(event.status, event.message, type="server_error", code="engine_error")
    if isinstance(event, Finished) and event.reason == "timeout":
        return timed_out(timeout_s)
    if isinstance(event, Finished) and event.reason == "cancelled":
        return ApiError(503, "the request was cancelled by the worker", type="server_error", code="unavailable")
    return None


def run(
    engine: Engine,
    job: Job,
    model: Model,
    emit: Callable[[dict], None],
    gone: Callable[[], bool],
    started: Callable[[], None] = lambda: None,
) -> list[ChoiceOutput]:
    """Submit the job, call `started` (the stream's headers go out), feed `emit` every chunk, return the
    outputs. Raises ApiError (429 before `started`; an engine failure or the deadline after it) or
    ClientGone."""
    timeout_s = model.limits.request_timeout_s
    reqs, sink, deadline = submit(engine, [c.prompt for c in job.choices], [c.params for c in job.choices], timeout_s)
    try:
        started()
        outs = [ChoiceOutput(i, c.prompt, model.decode, job.stops, job.echo) for i, c in enumerate(job.choices)]
        for chunk in job.shape.opening(len(outs)):
            emit(chunk)
        for out, c in zip(outs, job.choices, strict=True):
            for chunk in job.shape.chunk(out, out.start(c.params.prompt_logprobs is not None)):
                emit(chunk)
        left = len(outs)
        while left:
            i, event = next_event(sink, gone, deadline, timeout_s)
            out = outs[i]
            if out.done:  # a stop string ended it; the engine's late events do not count
                continue
            error = failure(event, timeout_s)
            if error is not None:
                raise error
            delta = out.on(event)
            if out.done:
                left -= 1
                if not isinstance(event, Finished):
                    reqs[i].cancel()  # a stop string: free the engine's slot now
            for chunk in job.shape.chunk(out, delta):
                emit(chunk)
        return outs
    except BaseException:
        cancel(reqs)
        raise


def debug_logits(engine: Engine, ids: list[int], model: Model, gone: Callable[[], bool]) -> torch.Tensor:
    """The prompt's raw logits [prompt, vocab] (BLOOM_DEBUG_API only)."""
    timeout_s = model.limits.request_timeout_s
    reqs, sink, deadline = submit(
        engine, [ids], [SamplingParams(max_tokens=0, prompt_logprobs=0, debug_logits=True)], timeout_s
    )
    logits = None
    try:
        while True:
            _, event = next_event(sink, gone, deadline, timeout_s)
            error = failure(event, timeout_s)
            if error is not None:
                raise error
            if isinstance(event, PromptLogprobs):
                logits = event.logits
            if isinstance(event, Finished):
                break
    finally:
        cancel(reqs)
    if logits is None:
        raise ApiError(500, "the engine sent no logits", type="server_error")
    return logits
