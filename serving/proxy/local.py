"""The front proxy on a development machine: Debian's nginx, configured from the same template as the containers.

`proxy_command(nginx_binary(), 8080, "127.0.0.1:18080")` renders `gateway.conf.template` and a main config
into a fresh prefix folder (pid, temporary files; logs go to stderr) and gives the command that runs nginx in
the foreground. When the headers-more module is installed (Debian `libnginx-mod-http-headers-more-filter`)
the `Server` header is removed; without it nginx still sends `Server: nginx`, without a version.
"""

from __future__ import annotations

import shutil
import string
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
GATEWAY_TEMPLATE = HERE / "gateway.conf.template"
MAIN_TEMPLATE = HERE / "nginx-local.conf.template"
HEADERS_MORE_MODULE = Path("/usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so")
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_CONNECTIONS_PER_CLIENT = 64


def nginx_binary() -> str | None:
    """The nginx executable (Debian installs it in /usr/sbin, often not on a user's PATH), or None."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")


def render(template: Path, values: dict[str, str]) -> str:
    """The template with its ${PROXY_*} placeholders filled; nginx's own $variables are left as they are."""
    return string.Template(template.read_text()).safe_substitute(values)


def write_config(
    prefix: Path,
    listen: str,
    upstream: str,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    connections_per_client: int = DEFAULT_CONNECTIONS_PER_CLIENT,
) -> Path:
    """Write nginx.conf and gateway.conf under `prefix`; returns the main config."""
    headers_more = HEADERS_MORE_MODULE.is_file()
    values = {
        "PROXY_LISTEN": listen,
        "PROXY_UPSTREAM": upstream,
        "PROXY_MAX_BODY_BYTES": str(max_body_bytes),
        "PROXY_CONNECTIONS_PER_CLIENT": str(connections_per_client),
        "PROXY_LOAD_MODULES": f"load_module {HEADERS_MORE_MODULE};" if headers_more else "",
        "PROXY_CLEAR_SERVER": "more_clear_headers Server;" if headers_more else "",
        "PROXY_TLS_LISTEN": "",  # TLS is the containers' (entrypoint.sh); locally plain HTTP on loopback
    }
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    # Run as root, nginx's workers switch to `nobody`: they must be able to enter the prefix.
    prefix.chmod(0o755)
    (prefix / "gateway.conf").write_text(render(GATEWAY_TEMPLATE, values))
    main = prefix / "nginx.conf"
    main.write_text(render(MAIN_TEMPLATE, values))
    return main


def proxy_command(binary: str, port: int, upstream: str, host: str = "0.0.0.0", **limits: int) -> list[str]:
    """The command line of nginx listening on host:port in front of `upstream` (host:port), its config written
    to a fresh prefix folder."""
    prefix = Path(tempfile.mkdtemp(prefix="proxy-"))
    config = write_config(prefix, f"{host}:{port}", upstream, **limits)
    return [binary, "-p", str(prefix), "-c", str(config), "-e", "stderr", "-g", "daemon off;"]
