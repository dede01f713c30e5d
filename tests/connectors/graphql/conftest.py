"""The shop schema (shop.graphql) and a real GraphQL server serving it (server.py), for the tests here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._serving import loopback_socket, module_server

SHOP = Path(__file__).with_name("shop.graphql")


@pytest.fixture(scope="module")
def shop_server() -> Iterator[str]:
    """``python -m tests.connectors.graphql.server PORT`` on a free port; yields ``http://127.0.0.1:PORT``."""
    with loopback_socket() as sock:
        port = sock.getsockname()[1]
    with module_server("tests.connectors.graphql.server", port, path="") as url:
        yield url
