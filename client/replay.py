"""CSV readings as they arrive (a pipe, or a file that keeps growing) -> batches of rows for a stream."""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from typing import TextIO

Row = tuple[str, list[float | None]]
FOLLOW_POLL_SECONDS = 0.5


def lines_of(source: TextIO, follow: bool) -> Iterator[str]:
    """The lines of `source`; with `follow`, wait for more at its end (like `tail -f`) instead of stopping."""
    while True:
        line = source.readline()
        if line:
            yield line
        elif follow:
            time.sleep(FOLLOW_POLL_SECONDS)
        else:
            return


def read_rows(lines: Iterator[str]) -> tuple[list[str], Iterator[Row]]:
    """The sensor names of the `timestamp,<sensor>...` header, and the rows after it as they come."""
    reader = csv.reader(line for line in lines if line.strip())
    header = [cell.strip() for cell in next(reader, [])]
    if len(header) < 2 or header[0].lower() != "timestamp":
        raise ValueError(f"the first line must be the header timestamp,<sensor>..., got {','.join(header)[:80]!r}")

    def rows() -> Iterator[Row]:
        for row in reader:
            if len(row) != len(header):
                raise ValueError(f"line {reader.line_num}: expected {len(header)} fields, got {len(row)}")
            yield row[0].strip(), [float(cell) if cell.strip() else None for cell in row[1:]]

    return header[1:], rows()


def batches(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    """Groups of `size` rows (the last may be shorter)."""
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
