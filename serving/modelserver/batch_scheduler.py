"""Optional server-side batching (--enable_batching): concurrent Predict calls that run the same
signature runner with inputs of equal shapes beyond the batch dimension are concatenated into one
session call and the outputs split back, following TF Serving's BatchingParameters.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import grpc
import numpy as np

from serving.modelserver.errors import ServingError, invalid_argument
from serving.modelserver.servable import SignatureRunner
from serving.protos import tfs_config_pb2

DEFAULT_MAX_BATCH_SIZE = 1000  # TF Serving's defaults when a parameter is left out
DEFAULT_MAX_ENQUEUED_BATCHES = 10


@dataclass
class Task:
    runner: SignatureRunner
    inputs: Mapping[str, np.ndarray]
    rows: int
    queued_at: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    outputs: dict[str, np.ndarray] | None = None
    error: BaseException | None = None


class Batcher:
    def __init__(self, params: tfs_config_pb2.BatchingParameters) -> None:
        self.max_batch_size = params.max_batch_size.value or DEFAULT_MAX_BATCH_SIZE
        self.timeout = params.batch_timeout_micros.value / 1e6
        self.max_enqueued = params.max_enqueued_batches.value or DEFAULT_MAX_ENQUEUED_BATCHES
        threads = params.num_batch_threads.value or os.cpu_count() or 1
        self._queues: dict[tuple, list[Task]] = {}
        self._cv = threading.Condition()
        for index in range(threads):
            threading.Thread(target=self._work, name=f"batch-{index}", daemon=True).start()

    def run(self, runner: SignatureRunner, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = _rows(inputs)
        if rows > self.max_batch_size:
            raise invalid_argument(f"Task size {rows} is larger than maximum batch size {self.max_batch_size}")
        shapes = sorted((alias, array.dtype.str, array.shape[1:]) for alias, array in inputs.items())
        key = (id(runner), *shapes)
        task = Task(runner, inputs, rows)
        with self._cv:
            queue = self._queues.setdefault(key, [])
            if sum(t.rows for t in queue) + rows > self.max_enqueued * self.max_batch_size:
                raise ServingError(
                    grpc.StatusCode.UNAVAILABLE, "The batch scheduling queue to which this task was submitted is full"
                )
            queue.append(task)
            self._cv.notify()
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.outputs

    def _next_batch(self) -> list[Task]:
        """Wait for the oldest queue to be full or timed out, and take up to max_batch_size rows from it."""
        with self._cv:
            while True:
                if not self._queues:
                    self._cv.wait()
                    continue
                key, queue = min(self._queues.items(), key=lambda item: item[1][0].queued_at)
                wait = queue[0].queued_at + self.timeout - time.monotonic()
                if wait > 0 and sum(task.rows for task in queue) < self.max_batch_size:
                    self._cv.wait(wait)
                    continue
                batch, rows = [], 0
                while queue and rows + queue[0].rows <= self.max_batch_size:
                    rows += queue[0].rows
                    batch.append(queue.pop(0))
                if not queue:  # one queue per input shape: drop it when empty, or they pile up
                    del self._queues[key]
                return batch

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            try:
                self._run(batch)
            except BaseException as error:  # every waiting request must get an answer
                for task in batch:
                    task.error = error
            for task in batch:
                task.done.set()

    @staticmethod
    def _run(batch: list[Task]) -> None:
        runner = batch[0].runner
        if len(batch) == 1:
            batch[0].outputs = runner(batch[0].inputs)
            return
        merged = {alias: np.concatenate([task.inputs[alias] for task in batch]) for alias in batch[0].inputs}
        outputs = runner(merged)
        total = sum(task.rows for task in batch)
        if any(array.ndim == 0 or array.shape[0] != total for array in outputs.values()):
            for task in batch:  # outputs without a batch dimension cannot be split: run one by one
                task.outputs = runner(task.inputs)
            return
        offsets = np.cumsum([0] + [task.rows for task in batch])
        for task, start, stop in zip(batch, offsets[:-1], offsets[1:], strict=True):
            task.outputs = {alias: array[start:stop] for alias, array in outputs.items()}


def _rows(inputs: Mapping[str, np.ndarray]) -> int:
    sizes = {array.shape[0] if array.ndim else None for array in inputs.values()}
    if None in sizes:
        raise invalid_argument("Batching Run() input tensors must have at least one dimension")
    if len(sizes) != 1:
        raise invalid_argument("Batching Run() input tensors must have equal 0th-dimension size")
    return sizes.pop()
