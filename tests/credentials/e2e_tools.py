"""Tools for the end-to-end credential tests: read the connected account from the OIDC userinfo endpoint.

The endpoint comes from ``TB_TEST_USERINFO``; the tool sends with ``invocation.credentials.auth``, as any
connector would, and reports an upstream 401 so that the hub can refresh and retry.
"""

from __future__ import annotations

import os
from typing import Any

import httpx2

from tests._patience import patience
from toolbridge.connectors import Invocation
from toolbridge.errors import UpstreamStatusError


async def whoami(invocation: Invocation) -> dict[str, Any]:
    """Who the connection is (OIDC userinfo)."""
    assert invocation.credentials is not None
    async with httpx2.AsyncClient(trust_env=False, timeout=patience(10)) as client:
        response = await client.get(os.environ["TB_TEST_USERINFO"], auth=invocation.credentials.auth)
    if response.status_code >= 400:
        raise UpstreamStatusError(
            f"GET /me returned {response.status_code}",
            upstream_status=response.status_code,
            tool="api.whoami",
        )
    return dict(response.json())
