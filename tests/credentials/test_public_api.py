"""The credentials package's public surface is deliberate: sorted and importable."""

import toolbridge.credentials as credentials


def test_all_is_sorted_and_importable() -> None:
    assert credentials.__all__ == sorted(credentials.__all__)
    for name in credentials.__all__:
        assert getattr(credentials, name) is not None


def test_resolved_credentials_satisfy_the_connector_protocol() -> None:
    import httpx2

    from toolbridge.connectors import Credentials
    from toolbridge.credentials import ResolvedCredentials

    resolved = ResolvedCredentials("id", "gh", "alice", "oauth2", 1, httpx2.Auth(), None, ("token-value",))
    assert isinstance(resolved, Credentials)
    assert resolved.describe() == "gh as alice (oauth2)"
    assert "token-value" not in repr(resolved)
