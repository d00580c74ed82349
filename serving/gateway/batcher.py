"""Micro-batching: digit requests that arrive within a few milliseconds share one Predict call.

Each gthread worker runs one batcher thread (started on first use, i.e. after the fork). A request
hands its images to `submit` and blocks; the thread takes the first waiting request, gathers more
for at most `window_seconds` (or until `max_items` images), runs one Predict on the concatenation
and gives every request its own slice of the outputs, or the shared error. While a Predict is in
flight the next batch fills up, so under load the batches grow by themselves.

The window is only waited out while another request of this worker is still being decoded (it
entered `incoming()` and will submit soon); a lone request goes upstream at once, so batching costs
an idle gateway no latency.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from serving.gateway.upstream import Prediction

RunBatch = Callable[[np.ndarray, float], Prediction]


@dataclass
class _Pending:
    items: np.ndarray
    deadline: float
    future: Future[Prediction] = field(default_factory=Future)


class MicroBatcher:
    """Coalesces concurrent `submit` calls into `run_batch(concatenated_items, deadline)` calls."""

    def __init__(self, run_batch: RunBatch, *, window_seconds: float, max_items: int) -> None:
        self.run_batch = run_batch
        self.window_seconds = window_seconds
        self.max_items = max_items
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pid = -1
        self._incoming = 0

    @contextmanager
    def incoming(self) -> Iterator[None]:
        """Wrap the decoding of a request that will `submit`: the batcher then waits for it."""
        with self._lock:
            self._incoming += 1
        try:
            yield
        finally:
            with self._lock:
                self._incoming -= 1

    def submit(self, items: np.ndarray, deadline: float) -> Prediction:
        """The prediction for `items` alone (outputs sliced to its rows); raises what the batch raised."""
        if len(items) >= self.max_items:
            return self.run_batch(items, deadline)
        self._ensure_thread()
        pending = _Pending(items, deadline)
        self._queue.put(pending)
        return pending.future.result()

    def _ensure_thread(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                threading.Thread(target=self._loop, name="digit-batcher", daemon=True).start()
                self._pid = os.getpid()

    def _loop(self) -> None:
        carry: _Pending | None = None
        while True:
            first = carry or self._queue.get()
            batch, carry = self._gather(first)
            self._run(batch)

    def _gather(self, first: _Pending) -> tuple[list[_Pending], _Pending | None]:
        batch, count = [first], len(first.items)
        close_at = time.monotonic() + self.window_seconds
        while count < self.max_items:
            wait = close_at - time.monotonic()
            someone_coming = wait > 0 and self._incoming > 0
            try:
                pending = self._queue.get(timeout=wait) if someone_coming else self._queue.get_nowait()
            except queue.Empty:
                break
            if count + len(pending.items) > self.max_items:
                return batch, pending
            batch.append(pending)
            count += len(pending.items)
        return batch, None

    def _run(self, batch: list[_Pending]) -> None:
        deadline = min(pending.deadline for pending in batch)
        try:
            items = batch[0].items if len(batch) == 1 else np.concatenate([p.items for p in batch])
            prediction = self.run_batch(items, deadline)
        except BaseException as exc:  # handed to every waiting request, which re-raises it
            for pending in batch:
                pending.future.set_exception(exc)
            return
        start = 0
        for pending in batch:
            stop = start + len(pending.items)
            outputs = {key: value[start:stop] for key, value in prediction.outputs.items()}
            pending.future.set_result(Prediction(outputs=outputs, version=prediction.version))
            start = stop
