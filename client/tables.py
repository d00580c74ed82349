"""Plain-text tables and JSON renderings of results for the CLI."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns separated by two spaces, sized to their widest cell."""
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells)
    return "\n".join(line.rstrip() for line in lines)


def to_json(value: Any) -> str:
    """Dataclasses (nested), lists and dicts as indented JSON, datetimes as the API writes them."""

    def default(obj: Any) -> Any:
        if isinstance(obj, datetime):
            return when(obj)
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return dataclasses.asdict(obj)
        raise TypeError(f"not JSON serialisable: {type(obj).__name__}")

    return json.dumps(value, default=default, indent=2)


def when(moment: datetime) -> str:
    """A timestamp for a table cell, written as the API writes it: ISO 8601 with `T`, UTC as `Z`."""
    text = moment.isoformat()
    return text[: -len("+00:00")] + "Z" if text.endswith("+00:00") else text


def number(value: float) -> str:
    """A number as the API sent it: the shortest text that reads back as the same float (0.9999, not 1)."""
    return repr(float(value))
