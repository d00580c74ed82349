"""Micro-batching: digit requests of one worker that arrive together share one Predict call.

Leader/follower, without a batcher thread: a request that finds no batch being run becomes the
leader and runs the Predict on its own thread; requests arriving meanwhile queue up and wait. When
the leader's call returns, it hands every waiting request its slice of the outputs (or the shared
error) and promotes the oldest still-queued request to lead the next batch. So a lone request pays
no thread hand-off, and under load the batches grow by themselves while a Predict is in flight.

Before running, the leader yields once, so that requests of this worker that are ready to run (under gevent:
greenlets whose bytes arrived while the last batch ran) are read and join this batch; then it waits up to
`window_seconds` for more, but only while another request of this worker is still being decoded (it entered
`incoming()` and will submit soon).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from serving.gateway.upstream import Prediction

RunBatch = Callable[[np.ndarray, float], Prediction]


@dataclass
class _Pending:
    items: np.ndarray
    deadline: float
    result: Prediction | None = None
    error: BaseException | None = None
    done: bool = False
    promoted: bool = False

    def outcome(self) -> Prediction:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class MicroBatcher:
    """Coalesces concurrent `submit` calls into `run_batch(concatenated_items, deadline)` calls."""

    def __init__(self, run_batch: RunBatch, *, window_seconds: float, max_items: int) -> None:
        self.run_batch = run_batch
        self.window_seconds = window_seconds
        self.max_items = max_items
        self._cond = threading.Condition()
        self._queue: deque[_Pending] = deque()
        self._leading = False
        self._incoming = 0

    @contextmanager
    def incoming(self) -> Iterator[None]:
        """Wrap the decoding of a request that will `submit`: a leader then waits for it."""
        with self._cond:
            self._incoming += 1
        try:
            yield
        finally:
            with self._cond:
                self._incoming -= 1
                self._cond.notify_all()

    def submit(self, items: np.ndarray, deadline: float) -> Prediction:
        """The prediction for `items` alone (outputs sliced to its rows); raises what the batch raised."""
        if len(items) >= self.max_items:
            return self.run_batch(items, deadline)
        pending = _Pending(items, deadline)
        with self._cond:
            self._queue.append(pending)
            self._cond.notify_all()
            if self._leading:
                while not (pending.done or pending.promoted):
                    self._cond.wait()
                if pending.done:
                    return pending.outcome()
            self._leading = True
        self._lead()
        return pending.outcome()

    def _lead(self) -> None:
        """Gather a batch (the queue's head is this thread's own request), run it, hand over."""
        batch: list[_Pending] = []
        try:
            batch = self._gather()
            self._run(batch)
        finally:
            with self._cond:
                for pending in batch:
                    pending.done = True
                if self._queue:
                    self._queue[0].promoted = True
                else:
                    self._leading = False
                self._cond.notify_all()

    def _gather(self) -> list[_Pending]:
        # A zero sleep runs every ready greenlet once under gevent (threads: yields the GIL). At 16 clients it made
        # batches ~1.45x larger and the stack's CPU per single digit ~9% smaller (bench/RESULTS.md, round 6).
        time.sleep(0)
        close_at = time.monotonic() + self.window_seconds
        with self._cond:
            while self._incoming and self._queued_items() < self.max_items:
                wait = close_at - time.monotonic()
                if wait <= 0:
                    break
                self._cond.wait(wait)
            batch = [self._queue.popleft()]
            count = len(batch[0].items)
            while self._queue and count + len(self._queue[0].items) <= self.max_items:
                pending = self._queue.popleft()
                batch.append(pending)
                count += len(pending.items)
            return batch

    def _queued_items(self) -> int:
        return sum(len(pending.items) for pending in self._queue)

    def _run(self, batch: list[_Pending]) -> None:
        deadline = min(pending.deadline for pending in batch)
        try:
            items = batch[0].items if len(batch) == 1 else np.concatenate([p.items for p in batch])
            prediction = self.run_batch(items, deadline)
        except Exception as exc:  # every request of the batch re-raises it
            for pending in batch:
                pending.error = exc
            return
        start = 0
        for pending in batch:
            stop = start + len(pending.items)
            outputs = {key: value[start:stop] for key, value in prediction.outputs.items()}
            pending.result = Prediction(outputs=outputs, version=prediction.version)
            start = stop
