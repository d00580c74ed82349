"""A prepared series cut into equal-length chunks that overlap by the model's history, for ONE batched Predict
([n_chunks, chunk_len, F]), and the chunks' outputs stitched back into one value per grid point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Chunk:
    """Grid slice [start, stop) sent as one sequence; its outputs count from position `keep_from` on."""

    start: int
    stop: int
    keep_from: int

    @property
    def length(self) -> int:
        return self.stop - self.start


def make_chunks(n_points: int, history_length: int, chunk_size: int) -> list[Chunk]:
    """Chunks of at most `chunk_size` overlapping by `history_length` whose kept parts cover [history_length, n).

    Chunk k starts at k * (chunk_size - history_length), whatever `n_points` is, and only the last one is
    shorter: a point's chunk (and so its forecast, the LSTM reading each chunk from a fresh state) depends on
    its position in its part alone, so a stream scored as it grows (serving/gateway/streams/) gets the
    forecasts of the same series scored whole. Each chunk keeps its outputs from `history_length` on.
    """
    if chunk_size <= history_length:
        raise ValueError("chunk_size must be larger than history_length")
    if n_points < history_length + 1:
        raise ValueError(f"a series of {n_points} points has nothing to score (needs {history_length + 1})")
    stride = chunk_size - history_length
    return [
        Chunk(start, min(start + chunk_size, n_points), history_length)
        for start in range(0, n_points - history_length, stride)
    ]


def plan_chunks(parts: Sequence[tuple[int, int]], history_length: int, chunk_size: int) -> tuple[list[Chunk], int]:
    """Chunks over every part long enough to score, and the one length they are padded to for a batch.

    Parts of at most `history_length` points have nothing to score and get no chunk. A chunk shorter than the
    common length is padded at its end for the batch (the network is causal: padding changes no kept output).
    """
    scorable = [(a, b) for a, b in parts if b - a > history_length]
    if not scorable:
        raise ValueError("no part is longer than history_length")
    chunks = [
        Chunk(start + c.start, start + c.stop, c.keep_from)
        for start, stop in scorable
        for c in make_chunks(stop - start, history_length, chunk_size)
    ]
    return chunks, max(c.length for c in chunks)


def chunk_windows(values: np.ndarray, chunks: Sequence[Chunk], length: int) -> np.ndarray:
    """[n_chunks, length, F]: each chunk's values, padded at the end with its last value."""
    windows = np.empty((len(chunks), length, values.shape[1]), dtype=values.dtype)
    for i, chunk in enumerate(chunks):
        windows[i, : chunk.length] = values[chunk.start : chunk.stop]
        windows[i, chunk.length :] = values[chunk.stop - 1]
    return windows


def stitch(chunks: Sequence[Chunk], outputs: np.ndarray, n_points: int) -> np.ndarray:
    """[n_points, ...] from per-chunk outputs [n_chunks, chunk_len, ...]; NaN where nothing was kept."""
    outputs = np.asarray(outputs)
    if outputs.shape[0] != len(chunks) or any(c.length > outputs.shape[1] for c in chunks):  # padded is fine
        raise ValueError(f"outputs of shape {outputs.shape} do not match {len(chunks)} chunks")
    dtype = outputs.dtype if np.issubdtype(outputs.dtype, np.floating) else np.float64
    result = np.full((n_points, *outputs.shape[2:]), np.nan, dtype=dtype)
    for i, chunk in enumerate(chunks):
        result[chunk.start + chunk.keep_from : chunk.stop] = outputs[i, chunk.keep_from : chunk.length]
    return result
