"""Sessions of the admin UI: lifetimes on an injected clock, and a bounded store."""

from __future__ import annotations

from toolbridge.surfaces.admin._sessions import Sessions


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_ends_with_its_lifetime_and_sign_in_makes_a_new_id() -> None:
    clock = Clock()
    sessions = Sessions(lifetime=100, anonymous_lifetime=10, clock=clock)
    form = sessions.anonymous()
    signed = sessions.sign_in(form, "tb_key", "agent:ops")
    assert signed.id != form.id and signed.csrf != form.csrf and sessions.get(form.id) is None
    assert repr(signed.key) != "tb_key" and "tb_key" not in repr(signed)
    clock.now += 99
    assert sessions.get(signed.id) is signed
    clock.now += 1
    assert sessions.get(signed.id) is None and len(sessions) == 0


def test_opening_the_sign_in_form_many_times_never_drops_a_signed_in_session() -> None:
    sessions = Sessions(capacity=3, clock=Clock())
    signed = sessions.sign_in(sessions.anonymous(), "tb_key", "agent:ops")
    forms = [sessions.anonymous() for _ in range(10)]
    assert sessions.get(signed.id) is signed
    assert [sessions.get(f.id) is not None for f in forms] == [False] * 7 + [True] * 3
