"""The export contract lives in serving/contract.py alone: no module of training, the model server or the gateway
spells one of its names, paths or shapes on its own, and the one version-folder rule holds."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from serving import contract
from tests.processes import REPO_ROOT

PACKAGES = ("serving", "training")
# Generated protocol code, and the contract itself.
EXEMPT = {Path("serving/contract.py")}
EXEMPT_DIRS = (Path("serving/protos"),)

# Values distinctive enough that any literal equal to one is a second spelling of the contract. ("image",
# "digit" and "error" are also ordinary words of the HTTP API: the modules use the contract names for the
# model's tensors, but a literal "error" key in a JSON body is not the model's output.)
CONTRACT_STRINGS = {
    contract.SERVING_SIGNATURE,
    contract.INFO_SIGNATURE,
    contract.WINDOW_INPUT,
    contract.FORECAST_OUTPUT,
    contract.RESIDUAL_OUTPUT,
    contract.PROBABILITIES_OUTPUT,
    *contract.INFO_OUTPUTS,
    *contract.SAVED_MODEL_FILES,
    *contract.WARMUP_FILE.parts,
    str(contract.WARMUP_FILE),
    contract.MODEL_CARD_FILE,
    contract.REPORT_FILE,
    contract.EXPORT_TEMP_PREFIX,
}
CONTRACT_INTS = {contract.MNIST_SIDE}

# (file, value): literals that name something else that happens to share the spelling, with the reason.
ALLOWED = {
    # The training report's and model card's own keys (facts about a run, not the model_info signature).
    ("training/anomaly_model.py", "prior_error_mean"),
    ("training/anomaly_model.py", "prior_error_std"),
    ("training/run_anomaly.py", "sensor_names"),
    ("training/run_anomaly.py", "interval_seconds"),
    ("training/run_anomaly.py", "history_length"),
    # The HTTP API's response fields (docs/openapi), spelled for clients by the route and the OpenAPI document;
    # the API keeps them even if the model's tensors were renamed.
    ("serving/gateway/digits.py", "probabilities"),
    ("serving/gateway/anomaly.py", "history_length"),
    ("serving/gateway/anomaly.py", "interval_seconds"),
    ("serving/gateway/anomaly.py", "event_gap_points"),
    ("serving/gateway/openapi.py", "history_length"),
    ("serving/gateway/openapi.py", "interval_seconds"),
    ("serving/gateway/openapi.py", "event_gap_points"),
    ("serving/gateway/openapi.py", "probabilities"),
    # The stream API's request and state fields (docs/streams.md).
    ("serving/gateway/streams/openapi.py", "interval_seconds"),
    ("serving/gateway/streams/service.py", "interval_seconds"),
    ("serving/gateway/streams/state.py", "interval_seconds"),
}


def _sources() -> list[Path]:
    files = []
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            relative = path.relative_to(REPO_ROOT)
            if relative in EXEMPT or any(relative.is_relative_to(folder) for folder in EXEMPT_DIRS):
                continue
            files.append(relative)
    return files


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string nodes that are docstrings (prose may mention the contract's names)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def contract_literals(source: str) -> list[tuple[int, object]]:
    """(line, value) of each literal in `source` that spells a contract name or the MNIST side."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    hits = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or id(node) in skip:
            continue
        value = node.value
        spells_name = isinstance(value, str) and value in CONTRACT_STRINGS
        spells_shape = type(value) is int and value in CONTRACT_INTS
        if spells_name or spells_shape:
            hits.append((node.lineno, value))
    return hits


def test_no_module_spells_the_contract_on_its_own() -> None:
    files = _sources()
    assert len(files) > 50, "the scan must see the packages"
    spelled = [
        f"{path}:{line}: {value!r}"
        for path in files
        for line, value in contract_literals((REPO_ROOT / path).read_text())
        if (str(path), value) not in ALLOWED
    ]
    assert not spelled, "use serving.contract instead of:\n" + "\n".join(spelled)


def test_the_scan_sees_a_second_spelling() -> None:
    source = 'SIGNATURE = "serving_default"\nspec = [None, 28, 28, 1]\n"""serving_default in prose is fine"""\n'
    assert contract_literals(source) == [(1, "serving_default"), (2, 28), (2, 28)]


def test_one_version_folder_rule(tmp_path: Path) -> None:
    for name in ("1", "2", "10", ".export-abc", "3a", "latest", "\u0663"):  # the last is an Arabic-Indic 3
        (tmp_path / name).mkdir()
    (tmp_path / "4").write_text("a file, not a folder")
    assert list(contract.version_folders(tmp_path)) == [1, 2, 10]
    assert contract.version_folders(tmp_path / "absent") == {}


@pytest.mark.parametrize("files, loadable", [((), False), (("saved_model.pb",), True), (("saved_model.pbtxt",), True)])
def test_has_saved_model(tmp_path: Path, files: tuple[str, ...], loadable: bool) -> None:
    for name in files:
        (tmp_path / name).write_bytes(b"")
    assert contract.has_saved_model(tmp_path) is loadable
