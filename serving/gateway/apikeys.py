"""API keys: who may call the API, and how fast. Off unless `GATEWAY_API_KEYS_FILE` names a key file.

The key file (a k8s Secret or compose secret, mounted read-only) is JSON:

    {"keys": [{"name": "web", "sha256": "<hex>", "rate_per_second": 20, "burst": 40,
               "allow": ["/v1/"]}]}

Only the SHA-256 of each key is stored. Keys are 32 random bytes (`python -m serving.gateway.apikeys add`), so a
fast hash is enough: nobody can search a 256-bit space, and slow password hashes would cost every request.
A request names its key as `Authorization: Bearer <key>` or `X-API-Key: <key>`:
- no key or an unknown one: 401 `unauthenticated` (with `WWW-Authenticate: Bearer`);
- a known key on a path outside its `allow` prefixes (default `/v1/`): 403 `forbidden`;
- over the key's rate: 429 `rate_limited` with `Retry-After`. The limit is a token bucket per key shared by
  the gateway's worker processes (serving/gateway/ratelimit.py), so it holds per gateway (per pod).
Health, readiness, the web page and the API reference stay open, so probes work and the page can ask for a
key. Several entries may share a name, which is how a key is rotated (docs/security.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, g, request

from serving.gateway import metrics
from serving.gateway.errors import ApiError
from serving.gateway.ratelimit import SharedBuckets

BUCKETS_FILE = "api-key-buckets.bin"
MAX_KEY_LABELS = 50  # key names as metric label values: the first 50 (sorted) by name, the rest as "other"
OPEN_PATHS = ("/healthz", "/readyz", "/docs", "/openapi.json", "/static/", "/favicon")
DEFAULT_ALLOW = ("/v1/",)


class KeyRejected(ApiError):
    """A 401, 403 or 429 for a request's key; `key_name` is the known key's name, or None."""

    def __init__(self, key_name: str | None, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(code, message, headers)
        self.key_name = key_name


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    name: str
    sha256: str
    rate_per_second: float = 10.0
    burst: float = 20.0
    allow: tuple[str, ...] = DEFAULT_ALLOW


def parse_keys(document: Mapping[str, Any]) -> list[ApiKey]:
    """The entries of a key file; ValueError naming the first bad one."""
    keys = []
    for index, entry in enumerate(document.get("keys", [])):
        try:
            key = ApiKey(
                str(entry["name"]),
                str(entry["sha256"]).lower(),
                float(entry.get("rate_per_second", 10)),
                float(entry.get("burst", 20)),
                tuple(entry.get("allow", DEFAULT_ALLOW)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"keys[{index}]: {exc!r}") from None
        if len(key.sha256) != 64 or key.rate_per_second <= 0 or key.burst < 1 or not key.name:
            raise ValueError(f"keys[{index}] ({key.name!r}): needs a name, a 64-hex sha256, rate > 0, burst >= 1")
        keys.append(key)
    return keys


class KeyRing:
    """The keys of a key file, looked up by hash, each with its token bucket (shared by the workers)."""

    def __init__(self, keys: list[ApiKey], state_dir: Path) -> None:
        self._keys = {key.sha256: key for key in keys}
        self._bucket = {key.sha256: index for index, key in enumerate(keys)}
        self._buckets = SharedBuckets(state_dir / BUCKETS_FILE, [(key.rate_per_second, key.burst) for key in keys])
        self.names = sorted({key.name for key in keys})

    @classmethod
    def from_file(cls, path: Path, state_dir: Path) -> KeyRing:
        return cls(parse_keys(json.loads(path.read_text())), state_dir)

    def check(self, headers: Mapping[str, str], path: str) -> str | None:
        """The key's name, None for an open path; ApiError 401, 403 or 429 otherwise."""
        if path == "/" or path.startswith(OPEN_PATHS):
            return None
        presented = _presented_key(headers)
        key = self._keys.get(digest(presented)) if presented else None
        if key is None:
            why = "this API needs a key" if not presented else "the API key is not valid"
            raise KeyRejected(
                None,
                "unauthenticated",
                f"{why}: send `Authorization: Bearer <key>` or `X-API-Key: <key>`",
                {"WWW-Authenticate": "Bearer"},
            )
        if not path.startswith(key.allow):
            raise KeyRejected(key.name, "forbidden", f"the key {key.name!r} may not call {path}")
        wait = self._buckets.take(self._bucket[key.sha256])
        if wait:
            raise KeyRejected(
                key.name,
                "rate_limited",
                f"the key {key.name!r} is over its rate of {key.rate_per_second:g}/s",
                {"Retry-After": str(max(1, math.ceil(wait)))},
            )
        return key.name


def install(app: Flask, ring: KeyRing, exempt: Callable[[], bool]) -> None:
    """Check the key of every request (before its body is read) unless `exempt()`; count outcomes per key."""
    labels = set(ring.names[:MAX_KEY_LABELS])

    def label(name: str | None) -> str:
        if name is None:
            return "none"
        return name if name in labels else "other"

    @app.before_request
    def authenticate() -> None:
        if exempt():
            return
        try:
            name = ring.check(request.headers, request.path)
        except KeyRejected as rejected:
            metrics.labelled(metrics.API_KEY_REQUESTS, label(rejected.key_name), rejected.code).inc()
            raise
        if name is not None:
            g.api_key_name = name  # streams belong to the key that created them
            metrics.labelled(metrics.API_KEY_REQUESTS, label(name), "ok").inc()


def _presented_key(headers: Mapping[str, str]) -> str:
    authorization = headers.get("Authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("X-API-Key", "").strip()


# -- key file maintenance: python -m serving.gateway.apikeys add|remove|list --file keys.json -----------------


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {"keys": []}


def _save(path: Path, document: dict[str, Any]) -> None:
    parse_keys(document)
    path.write_text(json.dumps(document, indent=2) + "\n")
    path.chmod(0o644)  # hashes only; compose mounts the file as is, and the gateway runs as another user


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.gateway.apikeys", description="Manage a key file.")
    parser.add_argument("--file", type=Path, required=True, help="the key file (created if missing)")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="create a key, store its hash, print the key once")
    add.add_argument("name")
    add.add_argument("--rate-per-second", type=float, default=10.0)
    add.add_argument("--burst", type=float, default=20.0)
    add.add_argument("--allow", nargs="+", default=list(DEFAULT_ALLOW), help="path prefixes (default /v1/)")
    remove = commands.add_parser("remove", help="remove entries by name, or one entry by hash prefix")
    remove.add_argument("name_or_hash")
    commands.add_parser("list", help="names, hash prefixes and limits (never keys)")
    args = parser.parse_args(argv)
    document = _load(args.file)
    if args.command == "add":
        key = secrets.token_urlsafe(32)
        document["keys"].append(
            {
                "name": args.name,
                "sha256": digest(key),
                "rate_per_second": args.rate_per_second,
                "burst": args.burst,
                "allow": args.allow,
            }
        )
        _save(args.file, document)
        print(key)
    elif args.command == "remove":
        target = args.name_or_hash
        by_hash = len(target) >= 8  # a hash prefix must be long enough to name one entry
        kept = [e for e in document["keys"] if e["name"] != target and not (by_hash and e["sha256"].startswith(target))]
        if len(kept) == len(document["keys"]):
            print(f"no entry named or hashed {target!r}", file=sys.stderr)
            return 1
        _save(args.file, {**document, "keys": kept})
    else:
        for entry in document["keys"]:
            print(
                f"{entry['name']}\t{entry['sha256'][:12]}\t{entry.get('rate_per_second', 10)}/s"
                f"\tburst {entry.get('burst', 20)}\t{','.join(entry.get('allow', DEFAULT_ALLOW))}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
