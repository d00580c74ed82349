"""Every error code the gateway sends is in the one table (serving/gateway/errors.py), with one HTTP status."""

from __future__ import annotations

import ast
import re

from serving.gateway.errors import ERROR_STATUS, HTTP_ERROR_CODES, ApiError, code_for_status, status_of
from tests.processes import REPO_ROOT

# The constructors and helpers whose first string argument is an error code.
RAISERS = {"ApiError", "UpstreamError", "VersionGone", "KeyRejected", "_invalid"}
CODE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
# Codes sent without a literal at a call: Werkzeug's errors (app.py maps them), and _invalid's default.
SENT_IMPLICITLY = {*HTTP_ERROR_CODES, "invalid_value"}


def codes_raised() -> dict[str, list[str]]:
    """code -> the places (file:line) that raise it, from every call of a RAISER with a literal code."""
    found: dict[str, list[str]] = {}
    for path in sorted((REPO_ROOT / "serving" / "gateway").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) in RAISERS):
                continue
            literals = [
                arg.value
                for arg in [*node.args, *(k.value for k in node.keywords)]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            ]
            codes = [value for value in literals if CODE.fullmatch(value)]
            if codes:
                found.setdefault(codes[0], []).append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    return found


def test_every_raised_code_is_in_the_table() -> None:
    raised = codes_raised()
    assert len(raised) > 30, "the scan must see the gateway's errors"
    missing = {code: places for code, places in raised.items() if code not in ERROR_STATUS}
    assert not missing, f"add these codes to ERROR_STATUS: {missing}"
    unused = set(ERROR_STATUS) - set(raised) - SENT_IMPLICITLY
    assert not unused, f"codes nothing sends: {unused}"


def test_status_comes_from_the_table() -> None:
    assert ApiError("too_many_images", "x").status == 413
    assert ApiError("parameter_out_of_range", "x").status == 422
    assert ApiError("invalid_parameter", "x").status == 400
    assert status_of("http_418") == 418
    assert (code_for_status(404), code_for_status(413), code_for_status(418)) == (
        "not_found",
        "payload_too_large",
        "http_418",
    )
