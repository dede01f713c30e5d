"""Whose connections a call may use, who may manage one, and how a caller is told to connect its own."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from toolbridge.errors import BadRequest, ConnectRequired

if TYPE_CHECKING:
    from toolbridge.credentials._config import AuthConfig
    from toolbridge.policy import Principal

__all__ = ["check_owner", "connect_required", "may_manage", "owners"]


def owners(binding: AuthConfig, principal: Principal) -> tuple[str, ...]:
    """Whose connections a call by ``principal`` may use, in order (``""``: the shared ones)."""
    if binding.policy == "per_user":
        return (principal.id,)
    if binding.policy == "per_user_or_shared":
        return (principal.id, "")
    return ("",)


def check_owner(binding: AuthConfig, connector: str, owner: str) -> None:
    """Refuse a connection its policy would never use: a shared one on a per-user connector, or a
    personal one on a shared connector."""
    if not owner and binding.policy == "per_user":
        raise BadRequest(
            f"connector {connector!r} uses per-user connections only (policy: per_user)",
            hint="connect an account of your own (the CLI: --for AGENT)",
        )
    if owner and binding.policy == "shared":
        raise BadRequest(
            f"connector {connector!r} uses one shared connection (policy: shared); a personal one would "
            "never be used",
            hint="an operator connects it for everyone, or sets connections.policy: per_user",
        )


def may_manage(principal: Principal, conn_owner: str) -> bool:
    """Only the owner adds, replaces or removes a connection of its own; shared ones only an operator."""
    return principal.is_operator or (bool(conn_owner) and conn_owner == principal.id)


def connect_required(
    connector: str, owner: str, account: str | None, tool: str, *, oauth: bool
) -> ConnectRequired:
    """The error that tells exactly this caller how to connect its own account."""
    body: dict[str, object] = {"connector": connector, "account": account or "default"}
    suffix = f" --for {owner}" + (f" --account {account}" if account else "")
    if oauth:
        path, command = "/v1/connections/connect", f"toolbridge connect {connector}{suffix}"
        how = "and send the person to the authorization_url it returns"
    else:
        path, command = "/v1/connections", f"toolbridge connections add {connector}{suffix} --secret env:NAME"
        body["secret"] = "…"
        how = "with your own secret"
    return ConnectRequired(
        f"{owner} has no connection of its own to {connector!r}" + (f" as {account!r}" if account else ""),
        connect={"method": "POST", "path": path, "body": body, "command": command},
        hint=f"connect your own account: POST {path} {json.dumps(body, ensure_ascii=False)} {how} "
        f"(or an operator runs: {command})",
        tool=tool or None,
    )
