"""What every admin page shares: rendering (Jinja2, autoescaped), the security headers, who is signed in,
and the checks every form POST passes (the session's CSRF token, and the Origin header when sent)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from toolbridge.errors import AuthenticationError
from toolbridge.hub import Hub
from toolbridge.policy import Principal
from toolbridge.surfaces.admin._sessions import COOKIE, Session, Sessions

__all__ = [
    "HEADERS",
    "Admin",
    "Forbidden",
    "Operator",
    "SecurityHeaders",
    "SignInNeeded",
    "checked_form",
    "operator",
    "render",
]

_HERE = Path(__file__).parent
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
"""No script at all, this package's own stylesheet, forms posted only back here, never framed."""
HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
}


@dataclass
class Admin:
    """The admin app's state: the hub its pages read, the sessions, the templates."""

    hub: Hub
    sessions: Sessions
    templates: Jinja2Templates


def templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,  # every value is escaped: tool descriptions and results come from upstreams
        undefined=jinja2.StrictUndefined,
    )
    return Jinja2Templates(env=env)


def admin_of(request: Request) -> Admin:
    admin: Admin = request.app.state.admin
    return admin


@dataclass
class Operator:
    """A signed-in operator: the session and the principal its key authenticates as, now."""

    session: Session
    principal: Principal


class SignInNeeded(Exception):
    """No session, or its key no longer belongs to an operator: answered with the sign-in page."""


class Forbidden(Exception):
    """A form POST that failed a check; the message says which and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def operator(request: Request) -> Operator:
    """The signed-in operator of this request. The session's key is authenticated again on every request
    (cached by the hub): a key revoked, or no longer granted ``*``, ends the session here."""
    admin = admin_of(request)
    session = admin.sessions.get(request.cookies.get(COOKIE))
    if session is None or session.key is None:
        raise SignInNeeded
    try:
        principal = await admin.hub.authenticate(session.key.reveal())
    except AuthenticationError:
        admin.sessions.end(session.id)
        raise SignInNeeded from None
    if not principal.is_operator:
        admin.sessions.end(session.id)
        raise SignInNeeded
    return Operator(session, principal)


async def checked_form(request: Request, session: Session) -> FormData:
    """The POSTed form, once its CSRF token matches ``session``'s and it came from this server's own
    pages: a page elsewhere that posts here with the operator's cookie is refused."""
    _check_origin(request)
    form = await request.form()
    token = form.get("csrf")
    if not isinstance(token, str) or not token:
        raise Forbidden(
            "the form has no CSRF token: reload the page and submit the form again (it carries one)"
        )
    if not secrets.compare_digest(token.encode(), session.csrf.encode()):
        raise Forbidden(
            "the form's CSRF token is not this session's (the page is older than your last sign-in, or "
            "the form came from elsewhere): reload the page and submit the form again"
        )
    return form


def _check_origin(request: Request) -> None:
    """``Sec-Fetch-Site``, when sent, must say same-origin; ``Origin``, when sent, must be this server's.
    Under ``Referrer-Policy: no-referrer`` (ours) Chromium sends ``Origin: null`` even for a form of our
    own pages, so ``null`` is taken only with ``Sec-Fetch-Site: same-origin``."""
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    if site is not None and site not in ("same-origin", "none"):
        raise Forbidden(
            f"this form was sent from another site (Sec-Fetch-Site: {site}): refused (cross-site request). "
            "Open the admin UI at this server's address and submit the form there"
        )
    if origin is None or origin == _own_origin(request) or (origin == "null" and site == "same-origin"):
        return
    raise Forbidden(
        f"this form was sent from {origin!r}, not from this server ({_own_origin(request)}): refused "
        "(cross-site request). Open the admin UI at this server's address and submit the form there"
    )


def _own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"


def render(
    request: Request, name: str, context: dict[str, Any], *, status: int = 200, who: Operator | None = None
) -> HTMLResponse:
    """Template ``name`` as a page; ``who`` fills the header (the operator, the sign-out form)."""
    page: dict[str, Any] = {"who": who.principal.id if who else "", "csrf": who.session.csrf if who else ""}
    page.update(context)
    response: HTMLResponse = admin_of(request).templates.TemplateResponse(
        request, name, page, status_code=status
    )
    return response


def see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def set_cookie(request: Request, response: Response, session: Session, max_age: float) -> None:
    """The session cookie: HttpOnly, SameSite=Strict, path /admin, Secure over https; it expires when the
    session does."""
    response.set_cookie(
        COOKIE,
        session.id,
        max_age=int(max_age),
        path="/admin",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


class SecurityHeaders:
    """Every admin answer gets :data:`HEADERS` (those it sets itself are kept)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k.encode(), v.encode()) for k, v in HEADERS.items() if k.encode() not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
