"""W1–W3: the official test vectors of Standard Webhooks, GitHub and Slack verify; one flipped byte of the
body, id or timestamp fails; re-serialised bodies fail; either of two keys passes; ±301 s is refused."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json

import pytest
from standardwebhooks.webhooks import Webhook

from toolbridge.errors import AuthenticationError, BadRequest, ConfigurationError
from toolbridge.events import (
    Fields,
    GitHubVerifier,
    HmacScheme,
    HmacVerifier,
    SlackVerifier,
    StandardVerifier,
    StripeVerifier,
)

# Standard Webhooks: the specification's published vector.
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TS = 1614265330
SW_BODY = b'{"test": 2432232314}'
SW_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

# GitHub: "Validating webhook deliveries".
GH_SECRET = "It's a Secret to Everybody"
GH_BODY = b"Hello, World!"
GH_SIG = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

# Slack: "Verifying requests from Slack".
SL_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SL_TS = "1531420618"
SL_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SL_SIG = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
FORM = {"content-type": "application/x-www-form-urlencoded"}


def flip(data: bytes, at: int = 0) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


def sw_headers(msg_id: str = SW_ID, ts: int | str = SW_TS, sig: str = SW_SIG) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sig}


# -- W1: the vectors, and one flipped byte -----------------------------------------------------------


def test_standard_webhooks_vector_verifies() -> None:
    delivery = StandardVerifier([SW_SECRET]).verify(SW_BODY, sw_headers(), SW_TS)
    assert (delivery.delivery_id, delivery.payload) == (SW_ID, {"test": 2432232314})


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (flip(SW_BODY, 5), sw_headers()),
        (SW_BODY, sw_headers(msg_id=SW_ID[:-1] + "l")),
        (SW_BODY, sw_headers(ts=SW_TS + 1)),
        (SW_BODY, sw_headers(sig="v1," + "A" * 44)),
        (SW_BODY, sw_headers(sig=SW_SIG.replace("v1,", "v2,"))),
    ],
    ids=["body", "id", "timestamp", "signature", "version"],
)
def test_standard_webhooks_one_changed_byte_fails(body: bytes, headers: dict[str, str]) -> None:
    with pytest.raises(AuthenticationError, match="does not match"):
        StandardVerifier([SW_SECRET]).verify(body, headers, SW_TS)


def test_github_vector_verifies_and_a_flipped_byte_fails() -> None:
    verifier = GitHubVerifier([GH_SECRET])
    with pytest.raises(BadRequest, match="not valid JSON"):  # the signature passed; the body is no event
        verifier.verify(GH_BODY, {"x-hub-signature-256": GH_SIG}, 0)
    with pytest.raises(AuthenticationError, match="does not match"):
        verifier.verify(flip(GH_BODY), {"x-hub-signature-256": GH_SIG}, 0)
    with pytest.raises(AuthenticationError, match="does not match"):
        verifier.verify(GH_BODY, {"x-hub-signature-256": GH_SIG.replace("sha256", "sha1")}, 0)


def test_github_delivery_carries_id_type_and_subject() -> None:
    body = json.dumps({"action": "opened", "repository": {"full_name": "octo/hello"}}).encode()
    sig = "sha256=" + hmac.new(GH_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"x-hub-signature-256": sig, "x-github-event": "issues", "x-github-delivery": "d-1"}
    delivery = GitHubVerifier([GH_SECRET]).verify(body, headers, 0)
    assert (delivery.delivery_id, delivery.type, delivery.subject) == ("d-1", "issues.opened", "octo/hello")


def test_slack_vector_verifies_and_a_flipped_byte_fails() -> None:
    verifier = SlackVerifier([SL_SECRET])
    headers = {"x-slack-request-timestamp": SL_TS, "x-slack-signature": SL_SIG, **FORM}
    delivery = verifier.verify(SL_BODY, headers, int(SL_TS))
    assert delivery.type == "/webhook-collect" and delivery.subject == "G8PSS9T3V"
    with pytest.raises(AuthenticationError, match="does not match"):
        verifier.verify(flip(SL_BODY, 10), headers, int(SL_TS))
    with pytest.raises(AuthenticationError, match="does not match"):
        verifier.verify(SL_BODY, {**headers, "x-slack-request-timestamp": "1531420619"}, int(SL_TS))


def test_slack_url_verification_returns_the_challenge() -> None:
    body = (
        b'{"type": "url_verification", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}'
    )
    sig = "v0=" + hmac.new(SL_SECRET.encode(), b"v0:100:" + body, hashlib.sha256).hexdigest()
    delivery = SlackVerifier([SL_SECRET]).verify(
        body, {"x-slack-request-timestamp": "100", "x-slack-signature": sig}, 100
    )
    assert delivery.challenge == "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"


def stripe_header(secret: str, ts: int, body: bytes) -> str:
    sig = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={sig}"


def test_stripe_signature_and_its_300_s_tolerance() -> None:
    body = b'{"id": "evt_1", "type": "invoice.paid", "data": {"object": {"id": "in_1"}}}'
    verifier = StripeVerifier(["whsec_stripe"])
    delivery = verifier.verify(body, {"stripe-signature": stripe_header("whsec_stripe", 1000, body)}, 1300)
    assert (delivery.delivery_id, delivery.type, delivery.subject) == ("evt_1", "invoice.paid", "in_1")
    with pytest.raises(AuthenticationError, match="beyond ±300 s"):
        verifier.verify(body, {"stripe-signature": stripe_header("whsec_stripe", 1000, body)}, 1301)
    with pytest.raises(AuthenticationError, match="does not match"):
        verifier.verify(flip(body, 3), {"stripe-signature": stripe_header("whsec_stripe", 1000, body)}, 1000)


def test_generic_hmac_with_configured_fields() -> None:
    scheme = HmacScheme(
        header="X-Signature",
        algorithm="sha512",
        encoding="base64",
        prefix="sig=",
        signed=("header:X-Timestamp", "body"),
        separator=":",
        timestamp_header="X-Timestamp",
        id_header="X-Delivery",
    )
    verifier = HmacVerifier(["k" * 32], scheme, fields=Fields(type_field="kind", subject_field="order.id"))
    body = b'{"kind": "order.paid", "order": {"id": 7}}'
    mac = base64.b64encode(hmac.new(b"k" * 32, b"500:" + body, hashlib.sha512).digest()).decode()
    headers = {"x-signature": "sig=" + mac, "x-timestamp": "500", "x-delivery": "d9"}
    delivery = verifier.verify(body, headers, 500)
    assert (delivery.delivery_id, delivery.type, delivery.subject) == ("d9", "order.paid", "7")
    with pytest.raises(AuthenticationError, match="does not match"):
        verifier.verify(body, {**headers, "x-signature": mac}, 500)  # the prefix is part of the format
    with pytest.raises(AuthenticationError, match="beyond"):
        verifier.verify(body, headers, 801)


# -- W2: raw bytes only; two keys during a rotation --------------------------------------------------


def test_a_reserialised_body_fails() -> None:
    reserialised = json.dumps(json.loads(SW_BODY), separators=(",", ":")).encode()
    assert reserialised != SW_BODY and json.loads(reserialised) == json.loads(SW_BODY)
    with pytest.raises(AuthenticationError):
        StandardVerifier([SW_SECRET]).verify(reserialised, sw_headers(), SW_TS)


def test_either_of_two_signatures_and_either_of_two_keys_passes() -> None:
    new_secret = "whsec_" + "bmV3LXNlY3JldC1vZi1hdC1sZWFzdC0yNC1ieXRlcw=="
    wrong = "v1," + "B" * 43 + "="
    both = f"{wrong} {SW_SIG}"  # the sender signs with the old and the new key during its rotation
    assert StandardVerifier([SW_SECRET]).verify(SW_BODY, sw_headers(sig=both), SW_TS).delivery_id == SW_ID
    rotating = StandardVerifier([new_secret, SW_SECRET])  # the receiver accepts the new and the old key
    assert rotating.verify(SW_BODY, sw_headers(), SW_TS).delivery_id == SW_ID
    new_sig = Webhook(new_secret).sign(SW_ID, dt.datetime.fromtimestamp(SW_TS, dt.UTC), SW_BODY.decode())
    assert rotating.verify(SW_BODY, sw_headers(sig=new_sig), SW_TS).delivery_id == SW_ID
    with pytest.raises(AuthenticationError):
        StandardVerifier([new_secret]).verify(SW_BODY, sw_headers(), SW_TS)


def test_github_accepts_either_secret_during_rotation() -> None:
    verifier = GitHubVerifier(["the new secret", GH_SECRET])
    with pytest.raises(BadRequest):  # signature accepted (then the body is not JSON)
        verifier.verify(GH_BODY, {"x-hub-signature-256": GH_SIG}, 0)


# -- W3: ±301 s ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [-301, 301])
def test_timestamps_301_s_off_either_way_are_refused(offset: int) -> None:
    with pytest.raises(AuthenticationError, match="beyond ±300 s"):
        StandardVerifier([SW_SECRET]).verify(SW_BODY, sw_headers(), SW_TS + offset)
    headers = {"x-slack-request-timestamp": SL_TS, "x-slack-signature": SL_SIG, **FORM}
    with pytest.raises(AuthenticationError, match="beyond ±300 s"):
        SlackVerifier([SL_SECRET]).verify(SL_BODY, headers, int(SL_TS) + offset)


@pytest.mark.parametrize("offset", [-300, 300])
def test_timestamps_300_s_off_are_accepted(offset: int) -> None:
    assert StandardVerifier([SW_SECRET]).verify(SW_BODY, sw_headers(), SW_TS + offset).delivery_id == SW_ID


# -- malformed and unsigned ------------------------------------------------------------------------------


def test_unsigned_and_malformed_deliveries() -> None:
    with pytest.raises(AuthenticationError, match="carries no"):
        StandardVerifier([SW_SECRET]).verify(SW_BODY, {"webhook-id": SW_ID}, SW_TS)
    with pytest.raises(BadRequest, match="not a Unix time"):
        StandardVerifier([SW_SECRET]).verify(SW_BODY, sw_headers(ts="yesterday"), SW_TS)
    with pytest.raises(BadRequest, match="no single t="):
        StripeVerifier(["s"]).verify(b"{}", {"stripe-signature": "v1=00"}, 0)
    with pytest.raises(ConfigurationError, match="base64"):
        StandardVerifier(["whsec_!!!"])


@pytest.mark.parametrize("stamp", ["nan", "inf", "-inf"])
def test_a_signed_timestamp_that_is_no_time_is_refused(stamp: str) -> None:
    """'nan' compared false with the window, so a delivery signed with it was accepted at any time."""
    mac = hmac.new(SL_SECRET.encode(), f"v0:{stamp}:".encode() + SL_BODY, hashlib.sha256).hexdigest()
    headers = {"x-slack-request-timestamp": stamp, "x-slack-signature": f"v0={mac}", **FORM}
    with pytest.raises(BadRequest, match="not a Unix time"):
        SlackVerifier([SL_SECRET]).verify(SL_BODY, headers, int(SL_TS))
