"""Bad HTTP requests for the gateway: each must get a 4xx JSON error (one of `expected_status`), never a 500.

The gateway's request forms (serving/gateway/digits.py, anomaly.py):
- `/v1/digits:predict`: multipart/form-data with files in field `image`; an `image/*` body; or JSON
  `{"instances": [{"b64": "..."} | {"pixels": [[...28x28...]]}, ...]}`.
- `/v1/anomaly:score`: JSON `{"timestamps": [...], "values": [...]}` or `{..., "series": {name: [...]}}`;
  a `text/csv` body; or multipart/form-data with the CSV in field `file`.

The statuses assume the gateway's default limits (GATEWAY_MAX_REQUEST_BYTES 32 MiB,
GATEWAY_MAX_IMAGE_PIXELS 16 M, GATEWAY_MAX_SERIES_POINTS 100,000, GATEWAY_MAX_IMAGES 256) and an
anomaly model with history_length >= 2 at an interval of at most one hour. Everything is built by
small functions here, so a body is never a large literal.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from dataclasses import dataclass
from functools import cache

from PIL import Image, ImageDraw

DIGITS = "/v1/digits:predict"
ANOMALY = "/v1/anomaly:score"
JSON = "application/json"
CSV = "text/csv"
PNG = "image/png"
T0 = 1_709_251_200  # 2024-03-01T00:00:00Z
STEP = 300
BOUNDARY = "corpus-boundary"


@dataclass(frozen=True)
class BadInput:
    """One request; `files` (for `requests`' `files=`) replaces `body` and `content_type` when set."""

    name: str
    path: str
    content_type: str | None
    body: bytes
    expected_status: frozenset[int]
    files: dict[str, tuple[str, bytes, str]] | None = None


def bad(name: str, path: str, content_type: str | None, body: bytes, *statuses: int) -> BadInput:
    return BadInput(name, path, content_type, body, frozenset(statuses))


def upload(name: str, path: str, field: str, filename: str, data: bytes, mimetype: str, *statuses: int) -> BadInput:
    return BadInput(name, path, None, b"", frozenset(statuses), files={field: (filename, data, mimetype)})


# ---------------------------------------------------------------- bodies


def to_json(value: object) -> bytes:
    """JSON text; NaN and Infinity become the non-standard literals a lenient encoder would write."""
    return json.dumps(value, allow_nan=True).encode()


def digit_png() -> bytes:
    image = Image.new("L", (64, 64), 255)
    ImageDraw.Draw(image).line([(16, 12), (48, 12), (28, 54)], fill=0, width=6)
    return encode(image)


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_declaring(width: int, height: int) -> bytes:
    """A PNG of about 100 bytes whose header claims width x height pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + png_chunk(b"IEND", b"")
    )


def gif_declaring(width: int, height: int) -> bytes:
    size = struct.pack("<HH", width, height)
    return b"GIF89a" + size + b"\0\0\0" + b",\0\0\0\0" + size + b"\0\x02\x02\x44\x01\0;"


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real small JPEG with the frame header's dimensions rewritten."""
    data = bytearray(encode(Image.new("L", (16, 16), 128), "JPEG"))
    frame = data.index(b"\xff\xc0")
    data[frame + 5 : frame + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def corrupt_png() -> bytes:
    data = bytearray(digit_png())
    start = data.index(b"IDAT") + 8
    data[start : start + 40] = b"\xa5" * 40
    return bytes(data)


def b64_instance(data: bytes) -> bytes:
    return to_json({"instances": [{"b64": base64.b64encode(data).decode()}]})


def pixels_instance(pixels: object) -> bytes:
    return to_json({"instances": [{"pixels": pixels}]})


def grid(value: object, rows: int = 28, cols: int = 28) -> list[list[object]]:
    cells: list[list[object]] = [[0] * cols for _ in range(rows)]
    cells[rows // 2][cols // 2] = value
    return cells


def times(count: int, step: int = STEP) -> list[int]:
    return [T0 + step * i for i in range(count)]


def series_json(count: int = 600, **changes: object) -> bytes:
    payload: dict[str, object] = {"timestamps": times(count), "values": [float(i % 50) for i in range(count)]}
    payload.update(changes)
    return to_json(payload)


def values_with(value: object, count: int = 600) -> list[object]:
    values: list[object] = [1.0] * count
    values[count // 2] = value
    return values


def csv_text(rows: int = 600, header: str = "timestamp,value", bad_row: str | None = None) -> bytes:
    lines = [header] + [f"2024-03-01 {i // 12 % 24:02d}:{i % 12 * 5:02d}:00,{i % 7}.5" for i in range(rows)]
    if bad_row is not None:
        lines.insert(rows // 2, bad_row)
    return ("\n".join(lines) + "\n").encode()


def empty_multipart() -> bytes:
    return f"--{BOUNDARY}--\r\n".encode()


@cache
def oversized() -> bytes:
    """33 MiB of zero bytes, over the 32 MiB request limit; one shared object for all cases."""
    return bytes(33 * 1024 * 1024)


def nested_json(depth: int) -> bytes:
    return b'{"instances": ' + b"[" * depth + b"]" * depth + b"}"


# ---------------------------------------------------------------- the corpus


def digit_cases() -> list[BadInput]:
    png = digit_png()
    too_many = to_json({"instances": [{"pixels": grid(255)}] * 257})
    return [
        bad("image_zero_bytes", DIGITS, PNG, b"", 400),
        bad("image_truncated_png", DIGITS, PNG, png[: len(png) // 2], 400),
        bad("image_corrupt_png_data", DIGITS, PNG, corrupt_png(), 400),
        bad("image_text_file_as_png", DIGITS, PNG, b"this is not an image\n" * 20, 400, 415),
        bad(
            "image_eps_not_allowed",
            DIGITS,
            "image/x-eps",
            b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\n",
            400,
            415,
        ),
        bad("image_png_bomb_header", DIGITS, PNG, png_declaring(100_000, 100_000), 413),
        bad("image_gif_bomb_header", DIGITS, "image/gif", gif_declaring(65_535, 65_535), 413),
        bad("image_jpeg_bomb_header", DIGITS, "image/jpeg", jpeg_declaring(65_000, 65_000), 413),
        bad("image_real_png_over_pixel_limit", DIGITS, PNG, encode(Image.new("L", (5_000, 4_000), 0)), 413),
        bad("image_blank_white", DIGITS, PNG, encode(Image.new("L", (100, 100), 255)), 422),
        bad("digits_wrong_content_type", DIGITS, "text/plain", png, 415),
        bad("digits_no_content_type", DIGITS, None, png, 400, 415),
        bad("digits_xml_body", DIGITS, "application/xml", b"<digit>7</digit>", 415),
        upload("multipart_wrong_field", DIGITS, "picture", "seven.png", png, PNG, 400),
        upload("multipart_empty_file", DIGITS, "image", "empty.png", b"", PNG, 400),
        upload("multipart_text_file", DIGITS, "image", "notes.txt", b"hello\n" * 50, "text/plain", 400, 415),
        bad("multipart_no_parts", DIGITS, f"multipart/form-data; boundary={BOUNDARY}", empty_multipart(), 400),
        bad("multipart_no_boundary", DIGITS, "multipart/form-data", png, 400, 415),
        bad("json_empty_body", DIGITS, JSON, b"", 400),
        bad("json_syntax_error", DIGITS, JSON, b'{"instances": [', 400),
        bad("json_not_utf8", DIGITS, JSON, b'{"instances": ["\xff\xfe"]}', 400),
        bad("json_top_level_array", DIGITS, JSON, to_json([{"pixels": grid(1)}]), 400),
        bad("json_top_level_string", DIGITS, JSON, to_json("instances"), 400),
        bad("json_no_instances", DIGITS, JSON, to_json({"pixels": grid(255)}), 400),
        bad("json_instances_not_list", DIGITS, JSON, to_json({"instances": {"pixels": grid(255)}}), 400),
        bad("json_instances_empty", DIGITS, JSON, to_json({"instances": []}), 400),
        bad("json_instance_unknown_key", DIGITS, JSON, to_json({"instances": [{"png": "AAAA"}]}), 400),
        bad("json_too_many_images", DIGITS, JSON, too_many, 413),
        bad("json_deeply_nested", DIGITS, JSON, nested_json(100_000), 400),
        bad("b64_invalid_characters", DIGITS, JSON, to_json({"instances": [{"b64": "iVBOR%%%no base64"}]}), 400),
        bad("b64_not_a_string", DIGITS, JSON, to_json({"instances": [{"b64": 12345}]}), 400),
        bad("b64_of_truncated_png", DIGITS, JSON, b64_instance(png[:40]), 400, 415),
        bad("b64_of_text", DIGITS, JSON, b64_instance(b"just some words"), 400, 415),
        bad("pixels_27_rows", DIGITS, JSON, pixels_instance(grid(1, rows=27)), 422),
        bad("pixels_29_columns", DIGITS, JSON, pixels_instance(grid(1, cols=29)), 422),
        bad("pixels_flat_784", DIGITS, JSON, pixels_instance([0] * 784), 422),
        bad("pixels_string_value", DIGITS, JSON, pixels_instance(grid("255")), 422),
        bad("pixels_bool_value", DIGITS, JSON, pixels_instance(grid(True)), 422),
        bad("pixels_null_value", DIGITS, JSON, pixels_instance(grid(None)), 422),
        bad("pixels_out_of_range", DIGITS, JSON, pixels_instance(grid(300)), 422),
        bad("pixels_negative", DIGITS, JSON, pixels_instance(grid(-5)), 422),
        bad("pixels_nan_literal", DIGITS, JSON, pixels_instance(grid(float("nan"))), 400, 422),
        bad("pixels_infinity_literal", DIGITS, JSON, pixels_instance(grid(float("inf"))), 400, 422),
        bad("body_over_request_limit", DIGITS, PNG, oversized(), 413),
    ]


def anomaly_cases() -> list[BadInput]:
    many = 100_001
    return [
        bad("series_wrong_content_type", ANOMALY, "application/xml", b"<series/>", 415),
        bad("series_image_body", ANOMALY, PNG, digit_png(), 415),
        bad("series_empty_json_body", ANOMALY, JSON, b"", 400),
        bad("series_json_not_object", ANOMALY, JSON, to_json([[T0, 1.0], [T0 + STEP, 2.0]]), 400),
        bad("series_json_number", ANOMALY, JSON, b"42", 400),
        bad("series_missing_timestamps", ANOMALY, JSON, to_json({"values": [1, 2, 3]}), 400),
        bad("series_values_and_series", ANOMALY, JSON, series_json(series={"value": [1.0] * 600}), 400),
        bad("series_timestamps_not_list", ANOMALY, JSON, series_json(timestamps="2024-03-01"), 400),
        bad("series_values_not_list", ANOMALY, JSON, series_json(values={"a": 1}), 400),
        bad("series_length_mismatch", ANOMALY, JSON, series_json(values=[1.0] * 599), 422),
        bad("series_bool_value", ANOMALY, JSON, series_json(values=values_with(True)), 400),
        bad("series_string_value", ANOMALY, JSON, series_json(values=values_with("12.5")), 400),
        bad("series_nested_value", ANOMALY, JSON, series_json(values=values_with([1, 2])), 400),
        bad("series_infinity_string", ANOMALY, JSON, series_json(values=values_with("Infinity")), 422),
        bad("series_nan_literal", ANOMALY, JSON, series_json(values=values_with(float("nan"))), 400, 422),
        bad("series_infinity_literal", ANOMALY, JSON, series_json(values=values_with(float("inf"))), 400, 422),
        bad("series_huge_number", ANOMALY, JSON, series_json(values=values_with(1e39)), 422),
        bad("series_bad_timestamp_text", ANOMALY, JSON, series_json(timestamps=["yesterday", *times(600)[1:]]), 422),
        bad(
            "series_impossible_date",
            ANOMALY,
            JSON,
            series_json(timestamps=["2024-02-30T00:00:00Z", *times(600)[1:]]),
            422,
        ),
        bad("series_bool_timestamp", ANOMALY, JSON, series_json(timestamps=[True, *times(600)[1:]]), 400),
        bad(
            "series_unknown_sensors",
            ANOMALY,
            JSON,
            to_json({"timestamps": times(600), "series": {"no_such_a": [1.0] * 600, "no_such_b": [2] * 600}}),
            422,
        ),
        bad("series_empty_series_object", ANOMALY, JSON, to_json({"timestamps": times(3), "series": {}}), 400),
        bad("series_empty", ANOMALY, JSON, to_json({"timestamps": [], "values": []}), 422),
        bad("series_too_short", ANOMALY, JSON, to_json({"timestamps": times(2), "values": [1.0, 2.0]}), 422),
        bad("series_all_null", ANOMALY, JSON, series_json(values=[None] * 600), 422),
        bad(
            "series_no_part_long_enough",
            ANOMALY,
            JSON,  # outages split it into parts of 3 points
            to_json({"timestamps": [t + k * 30 * 86_400 for k in range(200) for t in times(3)], "values": [1] * 600}),
            422,
        ),
        bad(
            "series_too_many_points",
            ANOMALY,
            JSON,
            to_json({"timestamps": times(many, step=60), "values": [1.0] * many}),
            413,
        ),
        bad(
            "series_spans_too_long_a_grid",
            ANOMALY,
            JSON,
            to_json({"timestamps": [T0, T0 + 100 * 365 * 86_400], "values": [1.0, 2.0]}),
            413,
            422,
        ),
        bad("series_threshold_out_of_range", ANOMALY, JSON, series_json(threshold=5), 400, 422),
        bad("csv_no_header", ANOMALY, CSV, csv_text(header="2024-02-29 23:55:00,1.0"), 422),
        bad("csv_bad_timestamp_row", ANOMALY, CSV, csv_text(bad_row="not a time,1.0"), 422),
        bad("csv_non_numeric_value", ANOMALY, CSV, csv_text(bad_row="2024-03-02 00:00:00,hot"), 422),
        bad("csv_extra_field", ANOMALY, CSV, csv_text(bad_row="2024-03-02 00:00:00,1.0,2.0"), 422),
        bad("csv_unterminated_quote", ANOMALY, CSV, csv_text() + b'2024-03-05 00:00:00,"1.0\n', 422),
        bad("csv_infinity", ANOMALY, CSV, csv_text(bad_row="2024-03-02 00:00:00,inf"), 422),
        bad("csv_not_utf8", ANOMALY, CSV, csv_text().replace(b"timestamp", b"time\xff\xfestamp"), 400),
        bad("csv_empty_body", ANOMALY, CSV, b"", 400, 422),
        upload("csv_multipart_wrong_field", ANOMALY, "data", "series.csv", csv_text(), CSV, 400),
        upload("csv_multipart_binary_file", ANOMALY, "file", "series.csv", digit_png(), CSV, 400, 422),
        bad("series_over_request_limit", ANOMALY, CSV, oversized(), 413),
    ]


BAD_INPUTS: list[BadInput] = [*digit_cases(), *anomaly_cases()]
