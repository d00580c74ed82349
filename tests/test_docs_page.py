"""/docs in headless Chromium: Markdown code rendered as code, example arrays on one line, curl for each route."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.gateway.config import GatewayConfig
from serving.gateway.curl_examples import CURL_EXAMPLES
from serving.gateway.openapi import openapi_document
from tests.fixtures_gateway import GatewayHandle, start_gateway
from tests.processes import free_port
from tests.test_webpage import TIMEOUT_MS, PageProblems, browser  # noqa: F401 (the browser fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def docs_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayHandle]:
    """/docs needs no model: a real gateway in front of a port where nothing listens."""
    handle = start_gateway(f"127.0.0.1:{free_port()}", log_dir=tmp_path_factory.mktemp("docs-gateway"), workers=1)
    try:
        yield handle
    finally:
        handle.stop()


def test_docs_page_renders_code_examples_and_curl(browser, docs_gateway: GatewayHandle, tmp_path: Path) -> None:  # noqa: F811
    context = browser.new_context(viewport={"width": 1100, "height": 1400})
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        problems = PageProblems(page, docs_gateway.url)
        page.goto(f"{docs_gateway.url}/docs")
        page.locator("#operations .operation").first.wait_for()
        text = page.locator("body").inner_text()
        assert "`" not in text  # every Markdown backtick became a <code> element
        assert page.locator("p.description code").count() >= 5
        assert page.locator("#summary code").count() >= 2
        examples = page.locator(".example").all_text_contents()
        assert any('"probabilities": [0, 0, 0.001, 0, 0, 0, 0, 0.998, 0, 0.001]' in e for e in examples), examples
        samples = page.locator("pre.sample").all_text_contents()
        assert samples == [command for commands in CURL_EXAMPLES.values() for command in commands]
        operations = openapi_document(GatewayConfig())["paths"].values()
        assert page.locator(".operation").count() == sum(len(item) for item in operations)
        for card in page.locator(".operation").all():
            assert card.locator("pre.sample").count() >= 1
        schemas = page.locator("#schemas").inner_text()
        # Request schemas whose oneOf only says which fields are required still list their fields.
        assert schemas.count("timestamps: ") >= 2 and schemas.count("series?: ") >= 2, schemas
        assert "any | any" not in schemas and "minLength 1" in schemas
        page.screenshot(path=str(tmp_path / "docs.png"), full_page=True)
        assert problems.messages == []
    finally:
        context.close()
