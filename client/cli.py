"""`digits-client` / `python -m client`: classify digit images and score sensor CSVs from the shell.

Exit codes: 0 success, 1 the gateway answered with an error (4xx/5xx, or not ready), 2 usage error,
3 the gateway could not be reached.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from client.errors import GatewayError, GatewayUnavailable
from client.gateway import MAX_BATCH, GatewayClient
from client.tables import number, table, to_json, when

DEFAULT_URL = "http://localhost:8080"
PROGRESS_MIN_FILES = 10
EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3

Command = Callable[[GatewayClient, argparse.Namespace], int]


def cmd_predict(client: GatewayClient, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    paths: list[Path] = args.images
    with tqdm(total=len(paths), unit="img", file=sys.stderr, disable=len(paths) < PROGRESS_MIN_FILES) as bar:
        predictions = client.predict_digits(paths, batch_size=args.batch_size, progress=bar.update)
    if args.json:
        pairs = zip(paths, predictions, strict=True)
        print(to_json([{"image": str(path), **vars(pred)} for path, pred in pairs]))
        return EXIT_OK
    rows = []
    for path, pred in zip(paths, predictions, strict=True):
        ranked = sorted(range(10), key=lambda d: pred.probabilities[d], reverse=True)
        runner_up = ranked[1] if ranked[0] == pred.digit else ranked[0]
        rows.append(
            (path, pred.digit, number(pred.confidence), f"{runner_up} ({number(pred.probabilities[runner_up])})")
        )
    print(table(("IMAGE", "DIGIT", "CONFIDENCE", "NEXT BEST"), rows))
    if predictions:
        model = predictions[0].model
        print(f"model {model.name} v{model.version}")
    return EXIT_OK


def cmd_score(client: GatewayClient, args: argparse.Namespace) -> int:
    result = client.score_series(args.csv, threshold=args.threshold, sensitivity=args.sensitivity, model=args.model)
    if args.plot:
        import pandas as pd

        from client.plot import plot_scored_series

        values = pd.read_csv(args.csv).drop(columns="timestamp", errors="ignore")
        plot_scored_series(values, result, args.plot, title=args.csv.name)
    if args.json:
        print(to_json(result))
        return EXIT_OK
    scored = sum(p.score is not None for p in result.points)
    print(
        f"{args.csv}: {len(result.points)} points, {scored} scored, threshold {number(result.threshold)}, "
        f"model {result.model.name} v{result.model.version}"
    )
    print(f"{len(result.anomalies)} event(s)")
    if result.anomalies:
        print(
            table(
                ("START", "END", "POINTS", "PEAK SCORE", "PEAK AT"),
                [
                    (when(a.start), when(a.end), a.points, number(a.peak_score), when(a.peak_at))
                    for a in result.anomalies
                ],
            )
        )
    if args.plot:
        print(f"plot written to {args.plot}")
    return EXIT_OK


def cmd_stream(client: GatewayClient, args: argparse.Namespace) -> int:
    from client.replay import batches, lines_of, read_rows

    if args.batch < 1:
        print("error: --batch must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        source = open(args.follow) if args.follow else sys.stdin  # noqa: SIM115 - closed below (not stdin)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        sensors, rows = read_rows(lines_of(source, follow=args.follow is not None))
        stream = client.open_stream(
            args.stream, model=args.model, sensitivity=args.sensitivity, threshold=args.threshold, resume=args.resume
        )
        for batch in batches(rows, args.batch):
            columns = {name: [row[1][k] for row in batch] for k, name in enumerate(sensors)}
            answer = stream.append([row[0] for row in batch], columns if len(sensors) > 1 else columns[sensors[0]])
            for point in answer.points:
                score = f"({point.unscored})" if point.score is None else number(point.score)
                marks = " ALARM" if point.alarm else " anomaly" if point.is_anomaly else ""
                print(f"{when(point.timestamp)}  {score}{marks}", flush=True)
            for event in answer.events:
                print(
                    f"event {event.status}: {when(event.start)} .. {when(event.end)}, {event.points} point(s), "
                    f"peak {number(event.peak_score)}",
                    flush=True,
                )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if args.follow:
            source.close()
    return EXIT_OK


def cmd_health(client: GatewayClient, args: argparse.Namespace) -> int:
    live = client.health()
    readiness = client.ready()
    print(f"live: {live.get('status', live)}")
    print(f"ready: {'yes' if readiness else 'no: ' + readiness.message}")
    return EXIT_OK if readiness else EXIT_REFUSED


def cmd_models(client: GatewayClient, args: argparse.Namespace) -> int:
    models = client.models()
    if args.json:
        print(to_json(models))
        return EXIT_OK
    rows = [(m.name, m.role, v.version, v.state, v.error or "") for m in models for v in m.versions]
    rows += [(m.name, m.role, "-", "-", m.error or "no versions") for m in models if not m.versions]
    print(table(("MODEL", "ROLE", "VERSION", "STATE", "ERROR"), rows))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    # Connection options are accepted before or after the sub-command; SUPPRESS keeps a sub-command's
    # unset option from overwriting a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url", default=argparse.SUPPRESS, help=f"gateway base URL (default: $GATEWAY_URL or {DEFAULT_URL})"
    )
    common.add_argument("--timeout", type=float, default=argparse.SUPPRESS, help="seconds per request (default 10)")
    common.add_argument(
        "--retries", type=int, default=argparse.SUPPRESS, help="retries on connection errors and 503 (default 3)"
    )
    common.add_argument(
        "--api-key",
        default=argparse.SUPPRESS,
        help="API key, when the gateway requires one (default: $GATEWAY_API_KEY)",
    )
    parser = argparse.ArgumentParser(
        prog="digits-client", parents=[common], description="Client of the digits-and-sensors gateway."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    predict = commands.add_parser("predict", parents=[common], help="classify digit images")
    predict.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    predict.add_argument("--json", action="store_true", help="print JSON instead of a table")
    predict.add_argument(
        "--batch-size",
        type=int,
        default=MAX_BATCH,
        choices=range(1, MAX_BATCH + 1),
        metavar=f"1..{MAX_BATCH}",
        help="images per request",
    )
    predict.set_defaults(func=cmd_predict)

    score = commands.add_parser("score", parents=[common], help="score a sensor CSV for anomalies")
    score.add_argument("csv", type=Path, metavar="CSV", help="header timestamp,<sensor>...")
    score.add_argument("--json", action="store_true", help="print the full result as JSON")
    score.add_argument("--plot", type=Path, metavar="OUT.png", help="draw the series and score to a PNG")
    level = score.add_mutually_exclusive_group()
    level.add_argument("--threshold", type=float, help="score (0..1) above which a point is anomalous")
    level.add_argument(
        "--sensitivity",
        type=float,
        help="0..1 (default 0.65); each +0.2 flags ten times more normal points (docs/anomaly.md)",
    )
    score.add_argument("--model", help="the asset's anomaly model (default: the gateway's, 'anomaly')")
    score.set_defaults(func=cmd_score)

    stream = commands.add_parser(
        "stream", parents=[common], help="send CSV readings (stdin, or a growing file) to a stream; print each score"
    )
    stream.add_argument("--stream", required=True, help="the stream's id, e.g. pump-7")
    stream.add_argument("--follow", metavar="CSV", help="read this file and wait for new lines, like tail -f")
    stream.add_argument(
        "--resume", action="store_true", help="continue the existing stream from its end (default: start it afresh)"
    )
    stream.add_argument("--batch", type=int, default=1, metavar="N", help="readings per append (default 1)")
    stream.add_argument("--model", help="the asset's anomaly model (default: the gateway's, 'anomaly')")
    stream_level = stream.add_mutually_exclusive_group()
    stream_level.add_argument("--threshold", type=float, help="score (0..1) above which a point is anomalous")
    stream_level.add_argument("--sensitivity", type=float, help="0..1 (default 0.65, the gateway's)")
    stream.set_defaults(func=cmd_stream)

    health = commands.add_parser("health", parents=[common], help="liveness and readiness")
    health.set_defaults(func=cmd_health)

    models = commands.add_parser("models", parents=[common], help="served models and versions")
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")
    models.set_defaults(func=cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for path in [*getattr(args, "images", []), *filter(None, [getattr(args, "csv", None)])]:
        if not path.is_file():
            parser.error(f"no such file: {path}")
    url = getattr(args, "url", None) or os.environ.get("GATEWAY_URL") or DEFAULT_URL
    command: Command = args.func
    try:
        api_key = getattr(args, "api_key", None) or os.environ.get("GATEWAY_API_KEY")
        with GatewayClient(
            url, timeout=getattr(args, "timeout", 10.0), retries=getattr(args, "retries", 3), api_key=api_key
        ) as client:
            return command(client, args)
    except GatewayUnavailable as exc:
        print(f"error: gateway {url} unreachable: {exc.message}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except GatewayError as exc:
        print(f"error: the gateway refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
