"""curl commands for every route: shown in /docs (`x-codeSamples` of the OpenAPI document) and in the README.

tests/test_readme_commands.py runs each of them against a live gateway and checks that the README lists exactly
these. Files named here (seven.png, two.jpg, sensors.csv) are the reader's own.
"""

from __future__ import annotations

BASE_URL = "http://localhost:8080"

CURL_EXAMPLES: dict[str, tuple[str, ...]] = {
    "/v1/digits:predict": (
        f"curl -F image=@seven.png -F image=@two.jpg {BASE_URL}/v1/digits:predict",
        f"curl --data-binary @seven.png -H 'Content-Type: image/png' {BASE_URL}/v1/digits:predict",
    ),
    "/v1/anomaly:score": (
        f"curl --data-binary @sensors.csv -H 'Content-Type: text/csv' {BASE_URL}/v1/anomaly:score",
        f"curl -F file=@sensors.csv -F sensitivity=0.7 {BASE_URL}/v1/anomaly:score",
    ),
    "/v1/streams/{stream_id}": (
        f"curl -X PUT -H 'Content-Type: application/json' -d '{{\"sensitivity\": 0.7}}' {BASE_URL}/v1/streams/pump-7",
        f"curl {BASE_URL}/v1/streams/pump-7",
        f"curl -X DELETE {BASE_URL}/v1/streams/pump-7",
    ),
    "/v1/streams/{stream_id}:append": (
        'curl -H \'Content-Type: application/json\' -d \'{"after": null, "timestamps": '
        f'["2014-04-01T00:00:00Z"], "values": [20.1]}}\' {BASE_URL}/v1/streams/pump-7:append',
    ),
    "/v1/models": (f"curl {BASE_URL}/v1/models",),
    "/healthz": (f"curl {BASE_URL}/healthz",),
    "/readyz": (f"curl {BASE_URL}/readyz",),
    "/": (f"curl {BASE_URL}/",),
    "/docs": (f"curl {BASE_URL}/docs",),
    "/openapi.json": (f"curl {BASE_URL}/openapi.json",),
    "/metrics": (f"curl {BASE_URL}/metrics",),
}


def code_samples(path: str, method: str) -> list[dict[str, str]]:
    """The `x-codeSamples` entries of one operation (the vendor extension API renderers read)."""
    return [
        {"lang": "Shell", "label": "curl", "source": command}
        for command in CURL_EXAMPLES[path]
        if _method(command) == method
    ]


def _method(command: str) -> str:
    """The HTTP method a curl command sends: `-X`'s, else POST when it has a body, else GET."""
    words = command.split()
    if "-X" in words:
        return words[words.index("-X") + 1].lower()
    return "post" if {"-d", "-F", "--data-binary"} & set(words) else "get"
