"""Is a TCP port free to listen on, and if not, which process holds it (Linux /proc; elsewhere just "in use")."""

from __future__ import annotations

import os
import socket
from pathlib import Path

TCP_LISTEN = "0A"  # socket state in /proc/net/tcp


def port_free(port: int, host: str = "0.0.0.0") -> bool:
    """True when a server could bind `host:port` now (SO_REUSEADDR, as gunicorn and gRPC bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == TCP_LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def holders(port: int) -> list[str]:
    """ "pid N: command line" for each process listening on `port` that this user may inspect."""
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc") if wanted else []):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in wanted for fd in fds):
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
                found.append(f"pid {pid}: {command}")
        except OSError:  # gone meanwhile, or another user's process
            continue
    return found


def busy_ports_message(ports: dict[str, int]) -> str | None:
    """None when every port is free; otherwise one line per busy port, naming what holds it."""
    lines = []
    for role, port in ports.items():
        if not port_free(port):
            who = holders(port)
            lines.append(f"port {port} ({role}) is in use by " + ("; ".join(who) if who else "another process"))
    return "\n".join(lines) or None
