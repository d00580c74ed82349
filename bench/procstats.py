"""CPU seconds and peak memory of the processes under test (psutil, Linux /proc) and of the load generator.

A server's CPU time is measured as the difference of its counters around one load level; its peak RSS
is the kernel's high-water mark (VmHWM), so it covers everything up to the end of that level. The load
generator is a child of this process: `os.wait4` returns its exact CPU time and peak RSS.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass

import psutil

MB = 1_000_000  # decimal megabytes, as the targets are stated


def peak_rss_mb(pid: int) -> float | None:
    """Highest resident set size the process has had so far (VmHWM), in MB; None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / MB
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds the process has used so far; None if it is gone."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:
        return None
    return times.user + times.system


def rss_mb(pid: int) -> float | None:
    try:
        return psutil.Process(pid).memory_info().rss / MB
    except psutil.NoSuchProcess:
        return None


def wait_until_idle(pids: list[int], max_cores: float = 0.15, interval: float = 0.25, timeout: float = 60.0) -> float:
    """Wait until the processes together use less than `max_cores` of CPU; returns the seconds waited.

    A load level that ends leaves requests queued in the servers (wrk stops counting, the servers go on);
    the next level must not start into that backlog.
    """
    started = time.monotonic()
    previous = sum(cpu_seconds(pid) or 0.0 for pid in pids)
    while time.monotonic() - started < timeout:
        time.sleep(interval)
        current = sum(cpu_seconds(pid) or 0.0 for pid in pids)
        if (current - previous) / interval < max_cores:
            break
        previous = current
    return round(time.monotonic() - started, 2)


class CpuWindow:
    """CPU seconds used by named processes between `__init__` and `finish()`, with their peak RSS."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start = {name: cpu_seconds(pid) for name, pid in pids.items()}

    def finish(self) -> dict[str, dict[str, float | None]]:
        usage = {}
        for name, pid in self.pids.items():
            now, before = cpu_seconds(pid), self.start[name]
            used = None if now is None or before is None else round(now - before, 3)
            peak = peak_rss_mb(pid)
            usage[name] = {"cpu_seconds": used, "peak_rss_mb": None if peak is None else round(peak, 1)}
        return usage


@dataclass(frozen=True)
class ChildResult:
    returncode: int
    output: str
    cpu_seconds: float
    peak_rss_mb: float


def run_child(args: list[str], env: dict[str, str], timeout: float) -> ChildResult:
    """Run a command to completion; besides its output (stdout and stderr together), its own CPU time and
    peak RSS, which `os.wait4` reports for exactly that child (Popen.wait would reap it without them)."""
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT, env={**os.environ, **env})
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
            time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read().decode(errors="replace")
    return ChildResult(
        process.returncode, text, round(usage.ru_utime + usage.ru_stime, 3), round(usage.ru_maxrss * 1024 / MB, 1)
    )
