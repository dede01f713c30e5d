"""What the Client raises for a REST answer is the error the hub raised: ``errors.from_problem`` inverts
``errors.problem``. A workspace lock came back as ``BadRequest`` (status 423 by range), ``NotFound`` too,
their fields (``holder``, ``current``, ``limit``) lost; a key in flight came back as a plain ``Conflict``
without its ``retry_after``."""

from __future__ import annotations

import pytest

from toolbridge import errors


@pytest.mark.parametrize(
    "raised",
    [
        errors.NotFound("no workspace 'w'", hint="list them"),
        errors.LeaseLost("the lease on /a ended", hint="take it again"),
        errors.Locked("/a is locked", holder="agent:bob", expires_in=12.5, tool="workspace.write"),
        errors.PreconditionFailed("version 3 is not current", current={"version": 4, "etag": "x"}),
        errors.ChecksumMismatch("chunk 2 does not match", current={"offset": 1024}),
        errors.QuotaExceeded("over the quota", limit_name="bytes", limit=100, used=120, hint="free space"),
        errors.StorageQuotaExceeded("full", limit_name="bytes", limit=100, used=120, hint="raise it"),
        errors.BadRequest("bad", hint="fix it"),
        errors.Conflict("the name is taken", hint="pick another", tool="notes.add"),
        errors.KeyInFlight("a call with key k1 is running", retry_after=1.5, hint="ask again", tool="a.b"),
        errors.ToolExecutionError("the tool failed", tool="notes.add"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_an_error_comes_back_as_itself_with_its_fields(raised: errors.ToolbridgeError) -> None:
    doc = errors.problem(raised)
    rebuilt = errors.from_problem(doc, status=int(str(doc["status"])))
    assert type(rebuilt) is type(raised)
    assert (rebuilt.message, rebuilt.hint, rebuilt.tool) == (raised.message, raised.hint, raised.tool)
    assert rebuilt.extra() == raised.extra()


def test_a_token_refresh_failure_keeps_its_wait() -> None:
    waiting = errors.TokenRefreshFailed("the token endpoint answered 429", tool="gh.me")
    waiting.retry_after = 7.0
    rebuilt = errors.from_problem(errors.problem(waiting), status=503)
    assert isinstance(rebuilt, errors.TokenRefreshFailed) and rebuilt.retry_after == 7.0
    unknown = errors.from_problem(errors.problem(errors.TokenRefreshFailed("down")), status=503)
    assert isinstance(unknown, errors.TokenRefreshFailed) and unknown.retry_after is None
