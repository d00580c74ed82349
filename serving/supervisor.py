"""Keep child processes running: a child that exits is started again after a growing pause.

Used by `python -m serving.stack`: a crashed (say OOM-killed) model server is restarted instead of taking
the gateway down with it; the gateway answers 503 while it is away. The pause doubles from
`first_delay` to `max_delay` while a child keeps failing, and starts over once the child has stayed up
for `stable_after` seconds, so a crash loop does not spin the CPU and a rare crash is repaired quickly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class Child:
    """One supervised command and its restart schedule."""

    name: str
    command: Sequence[str]
    env: dict[str, str] = field(default_factory=dict)  # added to this process's environment
    first_delay: float = 0.5
    max_delay: float = 30.0
    stable_after: float = 60.0
    clock: Callable[[], float] = time.monotonic
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    _delay: float = field(default=0.0, init=False)
    _started: float = field(default=0.0, init=False)
    _restart_at: float | None = field(default=None, init=False)

    def start(self) -> subprocess.Popen[bytes]:
        self.process = subprocess.Popen(list(self.command), env={**os.environ, **self.env})
        self._started = self.clock()
        self._restart_at = None
        return self.process

    def check(self) -> None:
        """Schedule a restart when the process has exited, and perform it once its pause is over."""
        now = self.clock()
        if self._restart_at is not None:
            if now >= self._restart_at:
                self.restarts += 1
                self.start()
            return
        if self.process is None or self.process.poll() is None:
            return
        if now - self._started >= self.stable_after:
            self._delay = 0.0
        self._delay = min(self.max_delay, self._delay * 2 if self._delay else self.first_delay)
        self._restart_at = now + self._delay
        print(
            f"{self.name} exited with code {self.process.returncode}; restarting in {self._delay:.1f}s",
            file=sys.stderr,
            flush=True,
        )

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`; no restart afterwards."""
        self._restart_at = None
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def supervise(children: Sequence[Child], interval: float = 0.25) -> None:
    """Watch the children forever (until KeyboardInterrupt or SystemExit from a signal handler)."""
    while True:
        for child in children:
            child.check()
        time.sleep(interval)
