"""A real GraphQL server for the connector's tests: ariadne (schema first, ``shop.graphql``) under uvicorn.

``python -m tests.connectors.graphql.server PORT`` serves on 127.0.0.1:PORT:

* ``/graphql`` — the schema, with introspection;
* ``/busy/graphql`` — 503 with ``Retry-After: 0`` to the first request of each operation name, then as
  ``/graphql`` (a transient failure that was not processed);
* ``/lost/graphql`` — runs the operation (a mutation takes effect) and answers 500 instead of its result
  (a write whose outcome the client cannot know);
* ``/coded/graphql`` — ``user(id)`` and ``echo(text)`` fail with an error whose ``extensions.code`` is the
  argument (Apollo's convention): at HTTP 200 (``user`` is nullable: ``data`` holds its null), or 400
  (``echo`` is not: ``data`` is null, and ariadne then answers 400); ``/github/graphql`` — the same with the
  code as the error's ``type`` (GitHub's);
* ``/closed/graphql`` — the schema with introspection turned off (ariadne answers 400 to it);
* ``/one-error/graphql`` — answers every request with ``errors`` as one object, not a list (against the
  specification, as some servers do);
* ``/deep/graphql`` — answers every request with JSON nested 20,000 levels deep; ``/surrogate/graphql`` —
  ``whoami`` holding a lone UTF-16 surrogate escape (as ``json.dumps`` writes one); valid JSON syntax both;
* ``/throttled/graphql`` — the first request of each root field is refused as Shopify does (HTTP 200, code
  ``THROTTLED``, the cost in the answer's ``extensions``: 0.2 s until it would pass), then as ``/graphql``;
* any other path — 200 with a text body (not a GraphQL endpoint).

Mutations count their effects; the ``effects`` query reads the count.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx2
import uvicorn
from ariadne import (
    InterfaceType,
    MutationType,
    ObjectType,
    QueryType,
    UnionType,
    load_schema_from_path,
    make_executable_schema,
)
from ariadne.asgi import GraphQL
from ariadne.asgi.handlers import GraphQLHTTPHandler
from ariadne.types import Extension
from graphql import GraphQLError, GraphQLResolveInfo
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

SDL = load_schema_from_path(str(Path(__file__).with_name("shop.graphql")))
USERS: dict[str, dict[str, Any]] = {
    "1": {
        "id": "1",
        "name": "Ada",
        "role": "ADMIN",
        "joined": "2020-01-01T00:00:00Z",
        "address": {
            "city": "London",
            "country": {"code": "GB", "name": "United Kingdom", "capital": {"name": "London"}},
        },
    },
    "2": {"id": "2", "name": "Mallory", "role": "CUSTOMER", "joined": None, "address": None},
}
ORDERS = [{"id": "o1", "total": 12.5, "items": ["tea"]}]
state = {"effects": 0, "next": 3}
query, mutation = QueryType(), MutationType()


@query.field("user")
def _user(_: Any, info: GraphQLResolveInfo, id: str) -> dict[str, Any] | None:
    return USERS.get(id)


@query.field("users")
def _users(_: Any, info: GraphQLResolveInfo, first: int = 10, role: str | None = None) -> list[Any]:
    return [u for u in USERS.values() if role is None or u["role"] == role][:first]


@query.field("search")
def _search(_: Any, info: GraphQLResolveInfo, text: str) -> list[Any]:
    found: list[Any] = [u for u in USERS.values() if text.lower() in u["name"].lower()]
    return found + [o for o in ORDERS if text in o["items"]]


@query.field("node")
def _node(_: Any, info: GraphQLResolveInfo, id: str) -> Any:
    return USERS.get(id) or next((o for o in ORDERS if o["id"] == id), None)


@query.field("effects")
def _effects(*_: Any) -> int:
    return state["effects"]


@query.field("whoami")
def _whoami(_: Any, info: GraphQLResolveInfo) -> str | None:
    return info.context["request"].headers.get("authorization")


@query.field("broken")
def _broken(*_: Any) -> None:
    raise GraphQLError("the broken field always fails", extensions={"code": "BROKEN"})


@query.field("fragile")
def _fragile(*_: Any) -> list[Any]:
    return list(USERS.values())


@query.field("echo")
def _echo(_: Any, info: GraphQLResolveInfo, text: str) -> str:
    return text


@mutation.field("createUser")
def _create(_: Any, info: GraphQLResolveInfo, input: dict[str, Any]) -> dict[str, Any]:
    user = {
        "id": str(state["next"]),
        "name": input["name"],
        "role": input.get("role", "CUSTOMER"),
        "joined": None,
        "address": None,
    }
    state["next"] += 1
    state["effects"] += 1
    USERS[user["id"]] = user
    return user


@mutation.field("deleteUser")
def _delete(_: Any, info: GraphQLResolveInfo, id: str) -> bool:
    state["effects"] += 1
    return USERS.pop(id, None) is not None


def _name(user: dict[str, Any], info: GraphQLResolveInfo) -> str:
    listed = info.path.prev.prev if info.path.prev is not None else None
    if user["name"] == "Mallory" and listed is not None and listed.key == "fragile":
        raise GraphQLError("Mallory's name is withheld")
    return str(user["name"])


user_type = ObjectType("User")
user_type.set_field("name", _name)
user_type.set_field("orders", lambda user, info, first=10: ORDERS[:first] if user["id"] == "1" else [])
node = InterfaceType("Node", lambda obj, *_: "Order" if obj["id"].startswith("o") else "User")
result = UnionType("SearchResult", lambda obj, *_: "Order" if obj["id"].startswith("o") else "User")
schema = make_executable_schema(SDL, query, mutation, user_type, node, result)
graphql_app = GraphQL(schema, debug=False)
closed_app = GraphQL(schema, debug=False, introspection=False)


class Busy:
    """503 once per operation name, then the app."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, replay = await _body(receive)
        name = str(json.loads(body or b"{}").get("operationName"))
        if name not in self.seen:
            self.seen.add(name)
            await Response("busy", 503, headers={"Retry-After": "0"})(scope, replay, send)
            return
        await graphql_app(scope, replay, send)


async def lost(scope: Scope, receive: Receive, send: Send) -> None:
    """Runs the operation, then answers 500 in place of its result."""

    async def swallow(message: Any) -> None:
        return None

    await graphql_app(scope, receive, swallow)
    await Response("lost", 500)(scope, receive, send)


async def _body(receive: Receive) -> tuple[bytes, Receive]:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return body, replay


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The routes above, by exact path."""
    path = scope.get("path", "")
    if scope["type"] == "lifespan" or path == "/graphql":
        await graphql_app(scope, receive, send)
    elif path == "/busy/graphql":
        await busy(scope, receive, send)
    elif path == "/lost/graphql":
        await lost(scope, receive, send)
    elif path == "/moved/graphql":  # moved to another host name (another origin), the query string kept
        moved = f"http://localhost:{scope['server'][1]}/graphql?{scope['query_string'].decode()}"
        await Response(status_code=307, headers={"Location": moved})(scope, receive, send)
    elif path == "/closed/graphql":
        await closed_app(scope, receive, send)
    elif path == "/one-error/graphql":
        await _body(receive)
        body = {"errors": {"message": "the server is misconfigured"}}
        await Response(json.dumps(body), 200, media_type="application/json")(scope, receive, send)
    elif path in HOSTILE:
        await _body(receive)
        await Response(HOSTILE[path], 200, media_type="application/json")(scope, receive, send)
    elif path == "/coded/graphql":
        await coded_app(scope, receive, send)
    elif path == "/github/graphql":
        await github_app(scope, receive, send)
    elif path == "/throttled/graphql":
        await throttled_app(scope, receive, send)
    else:
        await PlainTextResponse("hello, this is not GraphQL")(scope, receive, send)


busy = Busy()
HOSTILE = {
    "/deep/graphql": '{"data": {"whoami": ' + "[" * 20_000 + "]" * 20_000 + "}}",
    "/surrogate/graphql": json.dumps({"data": {"whoami": "a\ud800b"}}),
}
coded = QueryType()


@coded.field("user")
@coded.field("echo")
def _refuse(_: Any, info: GraphQLResolveInfo, **arguments: str) -> str:
    code = next(iter(arguments.values()))
    raise GraphQLError(f"refused with {code}", extensions={"code": code})


def _github_style(error: GraphQLError, debug: bool = False) -> dict[str, Any]:
    formatted = dict(error.formatted)
    code = formatted.pop("extensions", {}).get("code")
    return {"type": code, **formatted} if code else formatted


coded_schema = make_executable_schema(SDL, coded, mutation, user_type, node, result)
coded_app = GraphQL(coded_schema, debug=False)
github_app = GraphQL(coded_schema, debug=False, error_formatter=_github_style)
THROTTLED_ONCE: set[str] = set()
"""Root fields the throttled route has refused once."""


class Throttle(Extension):
    """Refuses the first request of each root field as Shopify's Admin API refuses a throttled one."""

    def __init__(self) -> None:
        self.throttled = False

    def resolve(self, next_: Any, obj: Any, info: GraphQLResolveInfo, **kwargs: Any) -> Any:
        if info.path.prev is None and info.field_name not in THROTTLED_ONCE:
            THROTTLED_ONCE.add(info.field_name)
            self.throttled = True
            raise GraphQLError("Throttled", extensions={"code": "THROTTLED"})
        return next_(obj, info, **kwargs)

    def format(self, context: Any) -> dict[str, Any] | None:
        if not self.throttled:
            return None
        status = {"maximumAvailable": 1000.0, "currentlyAvailable": 40, "restoreRate": 50.0}
        return {"cost": {"requestedQueryCost": 50, "actualQueryCost": None, "throttleStatus": status}}


throttled_app = GraphQL(schema, debug=False, http_handler=GraphQLHTTPHandler(extensions=[Throttle]))


def checking_app(introspection: str, client_id: str, client_secret: str, denied: set[str]) -> GraphQL:
    """The shop as an OAuth resource server: ``whoami`` is the subject of the request's bearer token as
    the authorization server's introspection endpoint (RFC 7662) tells it. A token that is not active
    there, or that the API itself no longer takes (the token or its subject in ``denied``: say its user
    changed their password), is refused as Apollo Server does: HTTP 200, an error coded
    ``UNAUTHENTICATED``."""
    checking = QueryType()

    @checking.field("whoami")
    async def _subject(_: Any, info: GraphQLResolveInfo) -> str:
        token = info.context["request"].headers.get("authorization", "").removeprefix("Bearer ")
        form = {"token": token, "client_id": client_id, "client_secret": client_secret}
        async with httpx2.AsyncClient(trust_env=False, timeout=10) as client:
            answer = (await client.post(introspection, data=form)).json()
        if not answer.get("active") or token in denied or answer.get("sub") in denied:
            raise GraphQLError(
                "not signed in: the token is not taken", extensions={"code": "UNAUTHENTICATED"}
            )
        return str(answer["sub"])

    return GraphQL(make_executable_schema(SDL, checking, mutation, user_type, node, result), debug=False)


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
