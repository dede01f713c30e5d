"""An upstream that tells everything it was sent, for the secret-canary test (test_secret_canaries.py).

``python -m tests.e2e.echo_upstream EVENTS CLIENTS`` serves two origins on 127.0.0.1 (free ports, printed as
``ready PORT_A PORT_B``) and appends every request it receives — origin, method, path, headers, body — and
every token it issues to the JSON-lines file EVENTS. CLIENTS is a JSON object client_id → client secret.

Origin A: ``/echo`` (any method) answers 200 with the request echoed: headers, URL, body, and a Basic
``Authorization`` decoded into user and password; ``/fail/{status}`` answers that status with the same echo
(as an error page quoting the request would); ``/once`` answers 401 (echoing) to the first
``Authorization`` value it sees, and 200 to any other; ``/redirect`` sends to origin B, and ``/page``
has its next page there; ``/revoke`` kills every token (``/once`` refuses all, refreshes are refused);
``/authorize`` approves at once (redirects to ``redirect_uri`` with a code and the state); ``/token`` is
an OAuth token endpoint (authorization_code, rotating refresh_token, client_credentials, and an RFC 7523
JWT bearer grant for any well-formed assertion, recorded as issued; a refused grant's error quotes the
request, credentials first). Origin B echoes like A: a foreign origin, which
must get no credentials.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

_lock = threading.RLock()
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class State:
    def __init__(self, events: str, clients: dict[str, str]) -> None:
        self.events = events
        self.clients = clients
        self.codes: set[str] = set()
        self.refresh: set[str] = set()
        self.seen: set[str] = set()
        self.other = ""
        self.revoked = False

    def record(self, **event: Any) -> None:
        with _lock, open(self.events, "a") as file:
            file.write(json.dumps(event) + "\n")

    def issue(self, *, refresh: bool) -> dict[str, Any]:
        tokens: dict[str, Any] = {"access_token": f"CANARYat{secrets.token_hex(10)}", "token_type": "Bearer"}
        tokens["expires_in"] = 3600
        if refresh:
            tokens["refresh_token"] = f"CANARYrt{secrets.token_hex(10)}"
            self.refresh.add(tokens["refresh_token"])
        self.record(kind="issued", tokens=[v for k, v in tokens.items() if k.endswith("_token")])
        return tokens


def handler(state: State, origin: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return None

        def do_GET(self) -> None:
            self.handle_any()

        do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

        def handle_any(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
            state.record(kind="request", origin=origin, method=self.command, path=self.path,
                         headers=dict(self.headers.items()), body=body)  # fmt: skip
            path = urlsplit(self.path).path
            echoed = self.echo(body)
            if origin == "a" and path == "/authorize":
                return self.authorize()
            if origin == "a" and path == "/token":
                return self.token(body, echoed)
            if origin == "a" and path == "/revoke":  # every refresh token dies: the next refresh is refused
                with _lock:
                    state.refresh.clear()
                    state.revoked = True
                return self.send(200, {})
            if origin == "a" and path == "/redirect":
                return self.send(302, {}, location=f"{state.other}/echo?from=redirect")
            if path == "/page":  # a list whose next page is on origin B (B's page is the last)
                following = {"next": f"{state.other}/page"} if origin == "a" else {}
                return self.send(200, {"items": [echoed], **following})
            if origin == "a" and path.startswith("/fail/"):
                return self.send(int(path.removeprefix("/fail/")), {"error": "refused", "you_sent": echoed})
            if origin == "a" and path == "/once":
                auth = self.headers.get("authorization", "")
                with _lock:
                    state.seen = state.seen or {auth}  # the first token it sees is refused, for good
                    refused = auth in state.seen or state.revoked
                if refused:
                    return self.send(401, {"error": "token not accepted", "you_sent": echoed})
            return self.send(200, echoed)

        def echo(self, body: str) -> dict[str, Any]:
            echoed: dict[str, Any] = {"headers": dict(self.headers.items()), "url": self.path, "body": body}
            auth = self.headers.get("authorization", "")
            if auth.lower().startswith("basic "):
                try:
                    user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                except (binascii.Error, UnicodeDecodeError):
                    user = password = "?"
                echoed["basic"] = f"user {user} with password {password}"
            return echoed

        def authorize(self) -> None:
            query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
            code = secrets.token_hex(8)
            state.codes.add(code)
            target = query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"]})
            self.send(302, {}, location=target)

        def token(self, body: str, echoed: dict[str, Any]) -> None:
            form = {k: v[0] for k, v in parse_qs(body).items()}
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
            auth = self.headers.get("authorization", "")
            if auth.lower().startswith("basic "):
                client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            quoted = f"refused {body} from {self.headers.get('authorization')}"  # the secrets first
            refused = {"error": "invalid_grant", "error_description": quoted, "you_sent": echoed}
            grant = form.get("grant_type")
            if grant == JWT_BEARER:  # the signed assertion is the client's credential: no client secret
                return self.assertion(form.get("assertion", ""), refused)
            if state.clients.get(client_id) != secret:
                return self.send(401, {**refused, "error": "invalid_client"})
            with _lock:
                if grant == "authorization_code" and form.get("code") in state.codes:
                    state.codes.discard(form["code"])
                    return self.send(200, state.issue(refresh=True))
                if grant == "refresh_token" and form.get("refresh_token") in state.refresh:
                    state.refresh.discard(form["refresh_token"])  # rotating: the old one dies
                    return self.send(200, state.issue(refresh=True))
                if grant == "client_credentials":
                    return self.send(200, state.issue(refresh=False))
            return self.send(400, refused)

        def assertion(self, assertion: str, refused: dict[str, Any]) -> None:
            """A JWT bearer grant: tokens for a well-formed assertion (its signature is not checked), refused
            once revoked; the assertion, a bearer credential for its lifetime, is recorded as issued."""
            state.record(kind="issued", tokens=[assertion])
            try:
                claims = json.loads(base64.urlsafe_b64decode(assertion.split(".")[1] + "=="))
            except (IndexError, ValueError):
                claims = {}
            if state.revoked or "iss" not in claims:
                return self.send(400, refused)
            return self.send(200, state.issue(refresh=False))

        def send(self, status: int, payload: dict[str, Any], *, location: str | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            if location is not None:
                self.send_header("location", location)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def main() -> None:
    state = State(sys.argv[1], json.loads(sys.argv[2]))
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), handler(state, origin)) for origin in "ab"]
    state.other = f"http://127.0.0.1:{servers[1].server_address[1]}"
    for server in servers:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", *(s.server_address[1] for s in servers), flush=True)
    sys.stdin.read()  # until the test closes our stdin (or ends)


if __name__ == "__main__":
    main()
