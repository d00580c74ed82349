"""The client's streams: `python -m client stream` (stdin, --follow, --resume) and `GatewayClient.open_stream`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from client import GatewayClient
from client.errors import GatewayError
from tests.processes import REPO_ROOT, python_module
from tests.test_client_cli import JUMPSUP, run_cli


def readings(nab_dir: Path, rows: int, jump_at: int | None = None) -> pd.DataFrame:
    frame = pd.read_csv(nab_dir / JUMPSUP).head(rows)
    if jump_at is not None:
        frame.loc[jump_at:, "value"] += 40.0
    return frame


def test_stream_command_prints_each_score_and_events(gateway, nab_dir: Path, tmp_path: Path) -> None:
    frame = readings(nab_dir, 500, jump_at=400)
    csv = tmp_path / "readings.csv"
    frame.head(450).to_csv(csv, index=False)
    with csv.open() as stdin:
        done = subprocess.run(
            python_module(
                "client",
                "--url",
                gateway.url,
                "stream",
                "--stream",
                "cli-pump",
                "--sensitivity",
                "0.8",
                "--batch",
                "40",
            ),
            stdin=stdin,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    points = [line for line in lines if not line.startswith("event ")]
    assert len(points) == 450 and points[0].startswith("2014-04-01T00:00:00Z  (warming_up)")
    assert sum("(warming_up)" in line for line in points) == 16
    assert any(line.endswith(" ALARM") and line.startswith("2014-04-02T09:") for line in points)  # row 400 = 33h20
    assert any(line.startswith("event open: 2014-04-02T09:") for line in lines)
    # --resume continues where the stream ends; the library sees the same stream
    frame.tail(50).to_csv(csv, index=False)
    with csv.open() as stdin:
        more = subprocess.run(
            python_module("client", "--url", gateway.url, "stream", "--stream", "cli-pump", "--resume"),
            stdin=stdin,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert more.returncode == 0, more.stderr
    assert len([line for line in more.stdout.splitlines() if not line.startswith("event ")]) == 50
    with GatewayClient(gateway.url) as client:
        state = client.open_stream("cli-pump", resume=True).state()
    assert (state["readings"], state["end"]) == (500, "2014-04-02T17:35:00Z")


def test_stream_command_refuses_a_missing_file_and_a_bad_header(gateway, tmp_path: Path) -> None:
    bad = run_cli("stream", "--stream", "bad-header", "--follow", str(tmp_path / "missing.csv"), url=gateway.url)
    assert bad.returncode == 2 and "missing.csv" in bad.stderr
    csv = tmp_path / "r.csv"
    csv.write_text("time,value\n2014-04-01 00:00:00,1\n")
    bad = run_cli("stream", "--stream", "bad-header", "--follow", str(csv), url=gateway.url)
    assert bad.returncode == 2 and "header" in bad.stderr


def test_stream_command_follows_a_growing_file(gateway, nab_dir: Path, tmp_path: Path) -> None:
    frame = readings(nab_dir, 30)
    csv = tmp_path / "growing.csv"
    frame.head(20).to_csv(csv, index=False)
    process = subprocess.Popen(
        python_module("client", "--url", gateway.url, "stream", "--stream", "tail", "--follow", str(csv)),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        seen = [process.stdout.readline() for _ in range(20)]  # type: ignore[union-attr]
        with csv.open("a") as out:
            frame.iloc[20:].to_csv(out, index=False, header=False)
        seen += [process.stdout.readline() for _ in range(10)]  # type: ignore[union-attr]
        assert [line.split()[0] for line in seen] == [
            pd.Timestamp(t).strftime("%Y-%m-%dT%H:%M:%SZ") for t in frame["timestamp"]
        ]
        assert "(warming_up)" not in seen[-1]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_library_stream_scores_as_the_whole_series(gateway, nab_dir: Path) -> None:
    frame = readings(nab_dir, 300)
    with GatewayClient(gateway.url) as client:
        whole = client.score_series(frame)
        stream = client.open_stream("library", sensitivity=0.5)
        answers = [
            stream.append(list(frame["timestamp"][a:b]), list(frame["value"][a:b]))
            for a, b in ((0, 1), (1, 2), (2, 130), (130, 131), (131, 300))
        ]
        stream.delete()
    scores = [p.score for answer in answers for p in answer.points]
    assert len(scores) == 300 and answers[-1].end == "2014-04-02T00:55:00Z"
    want = np.array([np.nan if p.score is None else p.score for p in whole.points])
    np.testing.assert_allclose(np.array(scores, dtype=float), want, atol=1e-6)


def test_library_stream_behind_another_writer_gets_409_and_resumes(gateway, nab_dir: Path) -> None:
    frame = readings(nab_dir, 40)
    times, values = list(frame["timestamp"]), list(frame["value"])
    with GatewayClient(gateway.url) as client:
        first = client.open_stream("two-writers")
        first.append(times[:20], values[:20])
        second, third = (client.open_stream("two-writers", resume=True) for _ in range(2))
        sent = first.append(times[20:30], values[20:30])
        # the same append again is a retry (answered as before); other readings after the old end are refused
        assert second.append(times[20:30], values[20:30]) == sent
        with pytest.raises(GatewayError) as refused:
            third.append(times[20:30], [value + 1.0 for value in values[20:30]])
        assert refused.value.status == 409 and refused.value.code == "stream_conflict"
        assert "2014-04-01T02:25:00Z" in refused.value.message and third.end == "2014-04-01T01:35:00Z"
        resumed = client.open_stream("two-writers", resume=True)
        answer = resumed.append(times[30:], values[30:])
        assert answer.end == "2014-04-01T03:15:00Z" and len(answer.points) == 10
        assert resumed.state()["readings"] == 40
        resumed.delete()
