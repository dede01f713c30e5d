"""Bad input at every REST route of a real ``toolbridge serve``, sent by hand where schemathesis does not go:
JSON nested thousands deep, numbers of thousands of digits, ``NaN``, lone surrogates, integers past the
database's 64 bits. What counts: a 4xx problem document that names what was wrong, never a 500 or a 502
that calls itself a toolbridge bug.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests._patience import patience
from tests.e2e.test_rest_fuzz import HOOK_SECRET, fuzzed_server
from tests.e2e.test_serve import Server

pytestmark = pytest.mark.e2e
DEEP = b"[" * 5000 + b"]" * 5000
LONG_NUMBER = b"9" * 5000
LONE_SURROGATE = b'"\\ud800"'


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with fuzzed_server(tmp_path_factory.mktemp("bad-input")) as server:
        yield server


def _post(served: Server, path: str, body: bytes, headers: dict[str, str] | None = None) -> httpx2.Response:
    headers = {"Authorization": f"Bearer {served.key}", "Content-Type": "application/json", **(headers or {})}
    return httpx2.post(served.base + path, content=body, headers=headers, timeout=patience(20))


def _refused(answer: httpx2.Response, *words: str) -> None:
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    detail = answer.json()["detail"]
    assert all(word in detail for word in words), detail


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (DEEP, "nested too deeply"),
        (LONG_NUMBER, "more than 4300 digits"),
        (b"NaN", "NaN is not a JSON number"),
        (LONE_SURROGATE, "surrogate"),
    ],
)
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/tools/util.calculate/call", b'{"arguments": {"expression": %s}}'),
        ("/v1/workspaces/", b'{"name": %s}'),
        ("/v1/workspaces/shared/import", b'{"url": %s, "path": "/a.txt"}'),
    ],
)
def test_json_that_json_loads_chokes_on_is_a_400_saying_why(
    served: Server, path: str, body: bytes, value: bytes, reason: str
) -> None:
    """Deep nesting and long numbers answered 500 (RecursionError, ValueError); a lone surrogate a 502
    "toolbridge bug" at the call route, a 500 at the workspace's."""
    _refused(_post(served, path, body % value), "not valid JSON", reason)


def test_a_lone_surrogate_in_a_pipelines_input_is_invalid_arguments_naming_it(served: Server) -> None:
    """``POST /v1/runs`` reads its body with FastAPI, which lets an escaped lone surrogate through into
    ``input`` (any JSON object): the run's call answered 502, "this is a toolbridge bug"."""
    answer = _post(served, "/v1/runs", b'{"pipeline": "remember", "input": {"text": "\\ud800"}}')
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"] == [
        {"field": "text", "error": "a lone surrogate (\\ud800-\\udfff without its pair)"}
    ]


@pytest.mark.parametrize(
    ("value", "reason"), [(DEEP, "nested too deeply"), (LONE_SURROGATE, "surrogate"), (b"NaN", "NaN")]
)
def test_a_signed_delivery_that_is_not_plain_json_is_a_400(served: Server, value: bytes, reason: str) -> None:
    """Correctly signed, such a delivery answered 500 (RecursionError; the event log could not write the
    surrogate) or was stored with a NaN no JSON reader takes back."""
    body = b'{"type": "push", "value": %s}' % value
    msg_id, stamp = f"msg_{hashlib.sha256(body).hexdigest()[:12]}", str(int(time.time()))
    key = base64.b64decode(HOOK_SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    signed = {
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }
    _refused(_post(served, "/hooks/pushes", body, signed), "not valid JSON", reason)


PAST_64_BITS = 2**63


@pytest.mark.parametrize(
    ("path", "field", "bound"),
    [
        (f"/v1/events?subscription=pushed&cursor={PAST_64_BITS}", "query.cursor", "9223372036854775807"),
        (f"/v1/workspaces/shared/changes?cursor={PAST_64_BITS}", "cursor", "1 to 18 digits"),
    ],
)
def test_a_cursor_past_64_bits_is_refused_naming_it(
    served: Server, path: str, field: str, bound: str
) -> None:
    """Both answered 502 with OverflowError ("the tool itself failed" / "a toolbridge bug")."""
    auth = {"Authorization": f"Bearer {served.key}"}
    answer = httpx2.get(served.base + path, headers=auth, timeout=patience(20))
    assert answer.status_code == 400, answer.text
    assert field in answer.json()["detail"] and bound in answer.json()["detail"]


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("workspace.read", {"path": "/a.txt", "version": PAST_64_BITS}),
        ("workspace.read", {"path": "/a.txt", "offset": PAST_64_BITS}),
        ("workspace.restore", {"path": "/a.txt", "version": PAST_64_BITS}),
        ("workspace.changes", {"cursor": PAST_64_BITS}),
        ("events.poll", {"subscription": "pushed", "cursor": PAST_64_BITS}),
    ],
)
def test_an_integer_past_64_bits_is_an_invalid_argument(
    served: Server, tool: str, arguments: dict[str, object]
) -> None:
    """Each answered 502, "this is a toolbridge bug" (OverflowError in SQLite; ``offset`` a ValueError of
    the file's seek): the schemas now say how large a number may be."""
    answer = _post(served, f"/v1/tools/{tool}/call", json.dumps({"arguments": arguments}).encode())
    assert answer.status_code == 422, answer.text
    field = "cursor" if "cursor" in arguments else "offset" if "offset" in arguments else "version"
    assert f"{field}: 9223372036854775808 " in answer.json()["detail"]


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/v1/runs?state=done", "'succeeded'"),
        ("/v1/outbox?state=pending", "'queued'"),
        ("/v1/workspaces/shared/files?trashed=yes", "trashed=true"),
    ],
)
def test_a_filter_that_names_no_state_is_a_400_listing_them(served: Server, path: str, named: str) -> None:
    """A misspelt state or flag answered 200 with everything (or nothing) listed; ``trashed`` is an enum in
    the document (schemathesis: a schema-violating request accepted)."""
    answer = httpx2.get(
        served.base + path, headers={"Authorization": f"Bearer {served.key}"}, timeout=patience(20)
    )
    assert answer.status_code == 400, answer.text
    assert named in answer.json()["detail"] + answer.json()["hint"]


TUS = {"Tus-Resumable": "1.0.0", "Upload-Metadata": "path " + base64.b64encode(b"/t.txt").decode()}


@pytest.mark.parametrize(
    ("method", "path", "headers", "name"),
    [
        ("POST", "/v1/workspaces/shared/uploads", {**TUS, "Upload-Length": "-5"}, "Upload-Length"),
        ("POST", "/v1/workspaces/shared/uploads", {**TUS, "Upload-Length": "1_0"}, "Upload-Length"),
        (
            "PUT",
            "/v1/workspaces/shared/content?path=/n.txt",
            {"X-Expected-Version": "-5"},
            "X-Expected-Version",
        ),
        ("GET", "/v1/workspaces/shared/content?path=/n.txt&version=" + "9" * 30, {}, "version"),
        ("GET", "/v1/workspaces/shared/changes?cursor=%D9%A5", {}, "cursor"),  # an Arabic-Indic five
    ],
)
def test_a_workspace_number_that_is_not_plain_digits_is_a_400_naming_it(
    served: Server, method: str, path: str, headers: dict[str, str], name: str
) -> None:
    """``Upload-Length: -5`` answered 413 "the upload is -5 bytes, over the limit"; ``X-Expected-Version: -5``
    a 412; a 30-digit version a 502; Python's ``int`` took ``1_0`` and other scripts' digits."""
    auth = {"Authorization": f"Bearer {served.key}", **headers}
    answer = httpx2.request(method, served.base + path, headers=auth, content=b"x", timeout=patience(20))
    assert answer.status_code == 400, answer.text
    assert answer.json()["detail"].startswith(f"{name} must be a whole number of 1 to 18 digits")


@pytest.mark.parametrize(
    ("method", "path", "headers", "body"),
    [
        ("post", "/workspaces/", {"Content-Type": "application/json"}, b'{"name": "%s"}' % (b"n" * 70_000)),
        (
            "post",
            "/workspaces/{ws}/import",
            {"Content-Type": "application/json"},
            b'{"url": "%s"}' % (b"u" * 70_000),
        ),
        ("post", "/workspaces/{ws}/uploads", {**TUS, "Upload-Length": "9" * 18}, b""),
    ],
)
def test_a_413_a_workspace_route_answers_is_in_the_document(
    served: Server, method: str, path: str, headers: dict[str, str], body: bytes
) -> None:
    """These answered 413 (a JSON body over 64 KiB, an upload over the size limit), which their operations
    did not list: schemathesis counts an undocumented status as a failure."""
    auth = {"Authorization": f"Bearer {served.key}", **headers}
    url = served.base + "/v1" + path.replace("{ws}", "shared")
    answer = httpx2.request(method, url, headers=auth, content=body, timeout=patience(20))
    assert answer.status_code == 413, answer.text
    document = httpx2.get(served.base + "/v1/openapi.json", timeout=patience(10)).json()
    assert "413" in document["paths"][path][method]["responses"]


def test_a_download_is_documented_with_any_content_type(served: Server) -> None:
    """A file comes back with the type it was stored with; the document said application/octet-stream only
    (schemathesis: an undocumented Content-Type)."""
    document = httpx2.get(served.base + "/v1/openapi.json", timeout=patience(10)).json()
    responses = document["paths"]["/workspaces/{ws}/content"]["get"]["responses"]
    assert list(responses["200"]["content"]) == list(responses["206"]["content"]) == ["*/*"]


@pytest.mark.parametrize(
    ("headers", "status", "detail"),
    [
        ({"X-Expected-Version": ""}, 400, "X-Expected-Version must be a whole number"),
        ({"If-Match": ""}, 400, "If-Match is empty"),
        ({"If-Match": '"abc-1"'}, 412, "'/never-written.txt' does not exist, so no ETag matches"),
    ],
)
def test_a_put_with_an_empty_or_unmatchable_condition_says_so(
    served: Server, headers: dict[str, str], status: int, detail: str
) -> None:
    """An empty X-Expected-Version was no condition (the file was overwritten; schemathesis: a request
    violating the header's pattern accepted); an empty If-Match a 412 "'/0' has ETag None, which does not
    match " (a schema-valid request refused), as was any If-Match on a missing file."""
    auth = {"Authorization": f"Bearer {served.key}", **headers}
    url = served.base + "/v1/workspaces/shared/content?path=/never-written.txt"
    answer = httpx2.put(url, headers=auth, content=b"x", timeout=patience(20))
    assert answer.status_code == status, answer.text
    assert answer.json()["detail"].startswith(detail)
    document = httpx2.get(served.base + "/v1/openapi.json", timeout=patience(10)).json()
    put = document["paths"]["/workspaces/{ws}/content"]["put"]["parameters"]
    assert {p["name"]: p["schema"] for p in put}["If-Match"]["minLength"] == 1  # empty: not schema-valid


def test_a_415_and_a_416_are_problem_documents(served: Server) -> None:
    """A tus PATCH with another Content-Type and a Range past the end answered with no body at all: nothing
    said what was wrong or what to send."""
    auth = {"Authorization": f"Bearer {served.key}"}
    ws = served.base + "/v1/workspaces/shared"
    httpx2.put(f"{ws}/content?path=/five.txt", headers=auth, content=b"12345", timeout=patience(20))
    past = httpx2.get(
        f"{ws}/content?path=/five.txt", headers={**auth, "Range": "bytes=10-20"}, timeout=patience(20)
    )
    created = httpx2.post(
        f"{ws}/uploads", headers={**auth, **TUS, "Upload-Length": "3"}, timeout=patience(20)
    )
    text = httpx2.patch(
        served.base + created.headers["location"],
        headers={**auth, **TUS, "Upload-Offset": "0", "Content-Type": "text/plain"},
        content=b"abc",
        timeout=patience(20),
    )
    assert (past.status_code, text.status_code) == (416, 415)
    assert past.headers["content-range"] == "bytes */5" and text.headers["tus-resumable"] == "1.0.0"
    for answer in (past, text):
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["status"] == answer.status_code and answer.json()["hint"]
    assert "application/offset+octet-stream, not 'text/plain'" in text.json()["detail"]
    assert past.json()["detail"] == "the range 'bytes=10-20' lies outside the file's 5 bytes"


@pytest.mark.parametrize(
    ("path", "body", "detail"),
    [
        ("/v1/connections", {"connector": "notes", "account": "a", "secret": None}, "needs a secret"),
        ("/v1/connections", {"connector": "notes", "account": "a", "secret": ""}, "needs a secret"),
        (
            "/v1/connections",
            {"connector": "notes", "secret": "s" * 70_000},
            "body.secret: String should have at most",
        ),
        (
            "/v1/connections/connect",
            {"connector": "notes", "redirect_uri": "javascript:alert(1)"},
            "redirect_uri",
        ),
        (
            "/v1/connections/connect",
            {"connector": "notes", "redirect_uri": "https://a/" + "b" * 3000},
            "redirect_uri",
        ),
    ],
)
def test_a_connection_without_a_secret_or_a_redirect_that_is_no_url_is_refused(
    served: Server, path: str, body: dict[str, object], detail: str
) -> None:
    """A null or empty secret was stored (201), and every call with that connection answered 500
    "a api_key connection has no secret"; a redirect_uri of any text and length started a connect flow."""
    answer = _post(served, path, json.dumps(body).encode())
    assert answer.status_code == 400, answer.text
    assert detail in answer.json()["detail"]


def test_only_numbers_a_route_reads_are_bounded_in_the_document(served: Server) -> None:
    """The 18-digit bound went to the signed-URL ``v`` and ``exp`` too, which a request with an API key
    ignores: schemathesis saw ``exp=18446744073709551615`` accepted against the document's maximum."""
    document = httpx2.get(served.base + "/v1/openapi.json", timeout=patience(10)).json()
    schemas = {
        p["name"]: p["schema"] for p in document["paths"]["/workspaces/{ws}/content"]["get"]["parameters"]
    }
    assert "maximum" not in schemas["exp"] and "maximum" not in schemas["v"]
    assert schemas["version"]["maximum"] == 10**18 - 1


def test_the_workspaces_collection_is_served_without_its_trailing_slash(served: Server) -> None:
    """``GET`` and ``POST /v1/workspaces`` were 404: only ``/v1/workspaces/`` was routed, though every other
    collection of ``/v1`` is written without the slash."""
    auth = {"Authorization": f"Bearer {served.key}"}
    listed = httpx2.get(served.base + "/v1/workspaces", headers=auth, timeout=patience(20))
    assert listed.status_code == 200, listed.text
    assert "shared" in [w["name"] for w in listed.json()["workspaces"]]
    assert (
        listed.json()
        == httpx2.get(served.base + "/v1/workspaces/", headers=auth, timeout=patience(20)).json()
    )
    created = httpx2.post(
        served.base + "/v1/workspaces", json={"name": "unslashed"}, headers=auth, timeout=patience(20)
    )
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "unslashed"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/tools", None),
        ("POST", "/v1/tools/util.calculate/call", b'{"arguments": {"expression": "1 + 1"}}'),
        ("GET", "/v1/workspaces/shared/files", None),
        ("GET", "/v1/openapi.json", None),
        ("GET", "/v1/nothing-here", None),
    ],
)
def test_an_accept_header_that_allows_no_json_is_a_406(
    served: Server, method: str, path: str, body: bytes | None
) -> None:
    """``Accept: application/xml`` got JSON and a 200 (the call ran): the client was never told that it
    would not get what it asked for (found by the outside REST probe)."""
    auth = {"Authorization": f"Bearer {served.key}", "Content-Type": "application/json"}
    for accept in ("application/xml", "text/html, image/*", "application/json;q=0, */*"):
        answer = httpx2.request(
            method, served.base + path, content=body, headers={**auth, "Accept": accept}, timeout=patience(20)
        )
        assert answer.status_code == 406, (accept, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["hint"] == "send 'Accept: application/json', or no Accept header"
        assert repr(accept) in answer.json()["detail"]
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    for accept in (browser, "application/json", "application/*", "application/problem+json"):
        answer = httpx2.request(
            method, served.base + path, content=body, headers={**auth, "Accept": accept}, timeout=patience(20)
        )
        assert answer.status_code != 406, (accept, answer.text)


def test_what_is_not_json_is_served_whatever_the_accept_header(served: Server) -> None:
    """A download answers with the file's own type, the API's page with HTML: no 406 for them."""
    auth = {"Authorization": f"Bearer {served.key}"}
    ws = served.base + "/v1/workspaces/shared/content?path=/pixel.png"
    httpx2.put(ws, content=b"\x89PNG", headers={**auth, "Content-Type": "image/png"}, timeout=patience(20))
    download = httpx2.get(ws, headers={**auth, "Accept": "image/png"}, timeout=patience(20))
    assert (download.status_code, download.content) == (200, b"\x89PNG")
    page = httpx2.get(served.base + "/v1/docs", headers={"Accept": "text/html"}, timeout=patience(20))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/tools/util.calculate/call", {"arguments": {"expression": "1 + 1"}}),
        ("/v1/runs", {"pipeline": "remember", "input": {"text": "x"}}),
        ("/v1/connections", {"connector": "notes", "account": "a", "secret": "s"}),
        ("/v1/workspaces/", {"name": "in-xml"}),
        ("/v1/workspaces/shared/import", {"url": "https://example.com/a", "path": "/a.txt"}),
    ],
)
def test_a_body_in_a_type_the_route_cannot_read_is_a_415_naming_the_one_it_can(
    served: Server, path: str, body: dict[str, object]
) -> None:
    """A body sent as XML was a 400 about its JSON (or about a dictionary), or read as JSON anyway."""
    for kind in ("application/xml", "multipart/form-data; boundary=x"):
        answer = _post(served, path, json.dumps(body).encode(), {"Content-Type": kind})
        assert answer.status_code == 415, (kind, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.headers["accept-post"] == "application/json"
        assert answer.json()["hint"].startswith("send the body as JSON with 'Content-Type: application/json'")


def test_the_tool_call_reads_json_sent_as_a_form_or_as_text(served: Server) -> None:
    """README's ``curl -d`` sends the JSON as a form: the call route reads it (the other routes: 415)."""
    body = b'{"arguments": {"expression": "6 * 7"}}'
    for kind in ("application/x-www-form-urlencoded", "text/plain; charset=utf-8"):
        answer = _post(served, "/v1/tools/util.calculate/call", body, {"Content-Type": kind})
        assert answer.status_code == 200 and answer.json()["result"] == 42, answer.text
    assert (
        _post(served, "/v1/runs", b"{}", {"Content-Type": "application/x-www-form-urlencoded"}).status_code
        == 415
    )


def test_a_head_of_a_download_is_answered_and_the_server_serves_on(tmp_path: Path) -> None:
    """``HEAD`` of a download froze the whole server: the streamed answer waits for the client to go away,
    and the request it was given answered every read at once, so its loop never yielded (one CPU at 100%
    until the process was killed; no other request answered, SIGTERM unheard). Its own server: a frozen
    one would take the module's down with it."""
    with fuzzed_server(tmp_path) as server:
        auth = {"Authorization": f"Bearer {server.key}"}
        file = server.base + "/v1/workspaces/shared/content?path=/five.txt"
        httpx2.put(file, content=b"12345", headers=auth, timeout=patience(20))
        head = httpx2.head(file, headers=auth, timeout=patience(10))
        assert (head.status_code, head.headers["content-length"], head.content) == (200, "5", b"")
        assert httpx2.get(server.base + "/healthz", timeout=patience(10)).status_code == 200
        assert httpx2.get(file, headers=auth, timeout=patience(10)).content == b"12345"
