"""``connections test``: one read-only request with a connection's credentials, refreshed once on a 401."""

from __future__ import annotations

from dataclasses import dataclass

import httpx2

from toolbridge.credentials._manager import CredentialManager
from toolbridge.errors import ToolbridgeError, UpstreamUnavailable
from toolbridge.policy import Principal

__all__ = ["ProbeResult", "probe"]


@dataclass(frozen=True, slots=True)
class ProbeResult:
    connection_id: str
    ok: bool
    status: int | None
    detail: str

    def document(self) -> dict[str, object]:
        return {"connection": self.connection_id, "ok": self.ok, "status": self.status, "detail": self.detail}


async def probe(manager: CredentialManager, ident: str, *, principal: Principal | None = None) -> ProbeResult:
    conn = await manager.store.get(ident)
    binding = manager.binding(conn.connector)
    target = binding.probe
    if target is None:
        detail = (
            f"connector {conn.connector!r} has no probe URL: set connections.probe_url to a read-only GET"
        )
        return ProbeResult(ident, False, None, detail)
    method, url = target
    who = principal or Principal.local()
    try:
        creds = await manager.resolve(conn.connector, who, conn.account, tool="(credentials.test)")
        response = await _send(manager.client, method, url, creds.auth)
        if response.status_code == 401 and creds.refresh is not None:
            await creds.refresh()
            response = await _send(manager.client, method, url, creds.auth)
    except ToolbridgeError as exc:
        return ProbeResult(ident, False, None, f"{exc.code}: {exc.message}")
    ok = response.status_code < 400
    detail = f"{method} {httpx2.URL(url).host}{httpx2.URL(url).path} → {response.status_code}"
    await manager.record(
        "(credentials.test)", who.id, "", "", "ok" if ok else "error", None if ok else "probe_failed"
    )
    return ProbeResult(ident, ok, response.status_code, detail)


async def _send(client: httpx2.AsyncClient, method: str, url: str, auth: httpx2.Auth) -> httpx2.Response:
    try:
        return await client.request(method, url, auth=auth, headers={"Accept": "application/json"})
    except httpx2.HTTPError as exc:
        raise UpstreamUnavailable(
            f"{method} {httpx2.URL(url).host} failed: {type(exc).__name__}", sent=True
        ) from None
