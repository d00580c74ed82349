"""A human-readable model card per version, from the same facts as the JSON training report."""

from __future__ import annotations

from pathlib import Path


def write_model_card(path: Path, title: str, summary: str, facts: dict[str, object], signature: str) -> None:
    lines = [f"# {title}", "", summary, "", "## Facts", "", "| fact | value |", "|---|---|"]
    lines += [f"| {key} | {_show(value)} |" for key, value in facts.items()]
    lines += ["", "## Serving signature", "", "```", signature.strip(), "```", ""]
    path.write_text("\n".join(lines))


def _show(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value)
    return str(value)
