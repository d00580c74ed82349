"""`make bench-nab`: the anomaly detector on the NAB corpus, trained and served exactly as a user would.

For every labelled file: train the product's model on NAB's probationary prefix only (min(floor(0.15 n), 750)
rows) with the training CLI (one model per file), serve all of them with the local model server and gateway,
score each whole file through `POST /v1/anomaly:score?model=<file>` at the default settings, take the
product's alarms (the first point of each event) as detections and score them with NAB's rules
(bench/nab/scorer.py). Prints per-file and normalised scores; writes nab.json and nab.png.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from bench.machine import save_json
from bench.nab.corpus import NabFile, labelled_files, read_column
from bench.nab.plot import plot_results
from bench.nab.scorer import PROFILES, normalised, score_file
from bench.stack import gateway, model_server
from training.models_config import CONFIG_NAME
from training.run_anomaly import model_name_for

DEFAULT_NAB = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nab"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.nab", description=__doc__.splitlines()[0])
    parser.add_argument("--nab", type=Path, default=DEFAULT_NAB, help="NAB folder (data/, labels/)")
    parser.add_argument("--out", type=Path, default=Path("bench-results") / "nab", help="results folder")
    parser.add_argument("--files", type=int, help="only the first N labelled files (a quick slice)")
    parser.add_argument("--epochs", type=int, help="training epochs (default: the training CLI's)")
    parser.add_argument(
        "--seed", type=int, default=0, help="the training CLI's seed: another draw of the networks (default 0)"
    )
    return parser.parse_args(argv)


def train(files: list[NabFile], models: Path, epochs: int | None, seed: int, log: Path) -> float:
    """One model per file with the training CLI on a folder of links to the files; returns wall seconds."""
    folder = models.parent / "csv"
    folder.mkdir()
    for nab_file in files:
        (folder / nab_file.path.name).symlink_to(nab_file.path.resolve())
    command = [
        sys.executable,
        "-m",
        "training",
        "anomaly",
        "--data",
        str(folder),
        "--out",
        str(models),
        "--train-fraction",
        "0.15",
        "--max-train-rows",
        "750",
    ]
    if epochs:
        command += ["--epochs", str(epochs)]
    command += ["--seed", str(seed)]
    started = time.perf_counter()
    with log.open("w") as handle:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=handle, text=True)
        assert process.stdout is not None
        for line in process.stdout:
            handle.write(line)
            if line.startswith("[assets"):
                print(line.rstrip(), flush=True)
    if process.wait():
        raise SystemExit(f"training failed (exit {process.returncode}); see {log}")
    return time.perf_counter() - started


def score_through_gateway(url: str, nab_file: NabFile) -> dict:
    request = urllib.request.Request(
        f"{url}/v1/anomaly:score?model={model_name_for(nab_file.path)}",
        data=nab_file.path.read_bytes(),
        headers={"Content-Type": "text/csv"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.nab / "labels").is_dir():
        print(f"error: no NAB corpus at {args.nab}", file=sys.stderr)
        return 2
    files = labelled_files(args.nab)[: args.files]
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-nab-") as scratch:
        models = Path(scratch) / "models"
        train_seconds = train(files, models, args.epochs, args.seed, args.out / "training.log")
        names = tuple(model_name_for(f.path) for f in files)
        started = time.perf_counter()
        with (
            model_server(models, args.out, config=models / CONFIG_NAME, models=names) as server,
            gateway(
                server.grpc_target,
                args.out,
                "gateway",
                2,
                {
                    "GATEWAY_MODELS_CONFIG": str(models / CONFIG_NAME),
                    "GATEWAY_ANOMALY_MODEL": names[0],
                    "GATEWAY_DEADLINE_SECONDS": "60",
                },
                ready_path="/healthz",
            ) as front,
        ):
            rows = [evaluate(front.url, nab_file) for nab_file in files]
        serve_seconds = time.perf_counter() - started
    results = {**summarise(rows, train_seconds, serve_seconds), "seed": args.seed}
    save_json(args.out / "nab.json", results)
    plot_results(results, args.out / "nab.png")
    print_results(results)
    print(f"results: {args.out / 'nab.json'}, {args.out / 'nab.png'}")
    return 0


def evaluate(url: str, nab_file: NabFile) -> dict:
    """Score one file through the gateway and under each NAB profile."""
    body = score_through_gateway(url, nab_file)
    timestamps, _ = read_column(nab_file.path, "value")
    order = np.argsort(timestamps, kind="stable")
    alarms = np.array([point["alarm"] for point in body["points"]])[order]
    flagged = np.array([point["is_anomaly"] for point in body["points"]])
    scores = {p.name: score_file(timestamps[order], alarms, nab_file.windows, p) for p in PROFILES}
    standard = scores["standard"]
    print(
        f"{nab_file.key:<62} {standard.score:7.2f}  windows {standard.detected_windows}/{standard.windows}"
        f"  false alarms {standard.false_positives}",
        flush=True,
    )
    return {
        "file": nab_file.key,
        "category": nab_file.category,
        "rows": len(timestamps),
        "alarms": int(alarms.sum()),
        "flagged_points": int(flagged.sum()),
        "gaps": len(body["gaps"]),
        "scores": {name: vars(score) for name, score in scores.items()},
    }


def summarise(rows: list[dict], train_seconds: float, serve_seconds: float) -> dict:
    from bench.nab.scorer import FileScore

    def corpus(subset: list[dict]) -> dict[str, float] | None:
        if not any(r["scores"]["standard"]["windows"] for r in subset):
            return None
        return {p.name: round(normalised([FileScore(**r["scores"][p.name]) for r in subset]), 2) for p in PROFILES}

    categories = sorted({r["category"] for r in rows})
    return {
        "files": rows,
        "normalised": corpus(rows),
        "by_category": {
            c: scores for c in categories if (scores := corpus([r for r in rows if r["category"] == c])) is not None
        },
        "train_seconds": round(train_seconds, 1),
        "serve_seconds": round(serve_seconds, 1),
    }


def print_results(results: dict) -> None:
    print("\nnormalised NAB score (standard / reward_low_FP_rate / reward_low_FN_rate):")
    for name, scores in [("all files", results["normalised"]), *results["by_category"].items()]:
        if scores is None:
            continue
        print(f"  {name:<24} " + " / ".join(f"{scores[p.name]:6.2f}" for p in PROFILES))
    print(f"training {results['train_seconds']} s, scoring {results['serve_seconds']} s")


if __name__ == "__main__":
    raise SystemExit(main())
