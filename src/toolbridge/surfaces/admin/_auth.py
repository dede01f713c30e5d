"""Sign-in with an operator's API key, and sign-out."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from toolbridge.errors import AuthenticationError
from toolbridge.surfaces.admin._sessions import COOKIE
from toolbridge.surfaces.admin._web import (
    admin_of,
    checked_form,
    operator,
    render,
    see_other,
    set_cookie,
)

__all__ = ["routes"]

_NOT_OPERATOR = (
    "{who} is not an operator: the admin UI signs in only with the key of an agent granted the scope '*' "
    "(toolbridge.yaml: agents: NAME: scopes: ['*']; then 'toolbridge agents create NAME')"
)


async def sign_in_page(request: Request) -> Response:
    """The form; its anonymous session carries the form's CSRF token."""
    admin = admin_of(request)
    session = admin.sessions.get(request.cookies.get(COOKIE))
    if session is not None and session.key is not None:
        return see_other("/admin/")
    session = session or admin.sessions.anonymous()
    response = render(request, "login.html", {"form_csrf": session.csrf, "error": ""})
    set_cookie(request, response, session, admin.sessions.anonymous_lifetime)
    return response


async def sign_in(request: Request) -> Response:
    admin = admin_of(request)
    session = admin.sessions.get(request.cookies.get(COOKIE))
    if session is None:  # the form's session is gone: the key is not read; a new form takes it
        fresh = admin.sessions.anonymous()
        error = (
            "Not signed in: the server no longer knows this sign-in form (the server restarted since it "
            "was opened, or the form is over an hour old; or cookies are off for this server): enter the "
            "key again"
        )
        form_page = render(request, "login.html", {"form_csrf": fresh.csrf, "error": error}, status=403)
        set_cookie(request, form_page, fresh, admin.sessions.anonymous_lifetime)
        return form_page
    form = await checked_form(request, session)
    key = str(form.get("key") or "").strip()
    if not key:
        error = "Not signed in: enter the API key of an operator (it starts with 'tb_')"
        return render(request, "login.html", {"form_csrf": session.csrf, "error": error}, status=401)
    refused = ""
    try:
        principal = await admin.hub.authenticate(key)
    except AuthenticationError as exc:
        refused, status = f"Not signed in: {exc.message}", 401
    else:
        if not principal.is_operator:
            refused, status = "Not signed in: " + _NOT_OPERATOR.format(who=principal.id), 403
    if refused:
        return render(request, "login.html", {"form_csrf": session.csrf, "error": refused}, status=status)
    signed = admin.sessions.sign_in(session, key, principal.id)
    response = see_other("/admin/")
    set_cookie(request, response, signed, admin.sessions.lifetime)
    return response


async def sign_out(request: Request) -> Response:
    who = await operator(request)
    await checked_form(request, who.session)
    admin_of(request).sessions.end(who.session.id)
    response = see_other("/admin/login")
    response.delete_cookie(COOKIE, path="/admin", httponly=True, samesite="strict")
    return response


async def home(_request: Request) -> Response:
    return see_other("/admin/tools")


routes = [
    Route("/", home),
    Route("/login", sign_in_page, methods=["GET"]),
    Route("/login", sign_in, methods=["POST"]),
    Route("/logout", sign_out, methods=["POST"]),
]
