"""toolbridge.yaml: typed, and every mistake located to its line with the fix."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from toolbridge import ConfigFileError, ConfigurationError, Hub, Principal
from toolbridge._starter import STARTER_CONFIG
from toolbridge.resilience import OutlierPolicy, RetryPolicy
from toolbridge.settings import RetrySettings, load_settings, parse_settings

EXAMPLES = Path(__file__).parents[1] / "examples"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "server:\n  prot: 80\n",
            "<toolbridge.yaml>:2: server.prot: unknown key (did you mean 'port'?; valid keys here:",
        ),
        (
            "connectors:\n  n:\n    kind: pyhton\n    tools: []\n",
            "<toolbridge.yaml>:3: connectors.n.kind: 'pyhton' is not a valid choice; "
            "choose one of: 'python', 'workspace', 'openapi', 'graphql', 'mcp' (did you mean 'python'?)",
        ),
        (
            "connectors:\n  n:\n    kind: python\n    tools:\n"
            "      - function: a:b\n        read_onyl: true\n",
            "<toolbridge.yaml>:6: connectors.n.tools.0.read_onyl: unknown key (did you mean 'read_only'?",
        ),
        (
            "agents:\n  bob:\n    scope: ['*']\n",
            "<toolbridge.yaml>:3: agents.bob.scope: unknown key (and 1 more problem) (did you mean 'scopes'?",
        ),
        (
            "limits:\n  call_timeout: -1\n",
            "<toolbridge.yaml>:2: limits.call_timeout: Input should be greater than 0",
        ),
        (  # YAML 1.1 reads off/on/no/yes as booleans ("Input should be a valid string" before)
            "connectors:\n  off:\n    kind: python\n    tools: []\n",
            "<toolbridge.yaml>:1: connectors: a name here was read as false: YAML reads off, no or false "
            "as a boolean (quote the name, as 'off': or",
        ),
        ("server: [\n", "<toolbridge.yaml>:2: not valid YAML"),
        ("- a\n", "the top level must be a mapping"),
    ],
)
def test_mistakes_are_located(text: str, expected: str) -> None:
    with pytest.raises(ConfigFileError) as info:
        parse_settings(text)
    assert str(info.value).startswith(expected) or expected in str(info.value)


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("server:\n  port: eighty\n", "write a whole number without quotes, e.g. 8080"),
        ("agents:\n  bot:\n    scopes: 'util.*'\n", "write a list: [\"util.*\"], or one '- item' per line"),
        ("server: 8080\n", "write its keys indented below it"),
        ("connectors:\n  u:\n    kind: openapi\n    spec: a.json\n    cache: maybe\n", "write true or false"),
    ],
)
def test_a_value_of_the_wrong_type_says_what_to_write(text: str, hint: str) -> None:
    """'Input should be a valid integer … (got 'eighty')' and no hint: what to write was left to guess."""
    with pytest.raises(ConfigFileError) as info:
        parse_settings(text)
    assert info.value.hint is not None and hint in info.value.hint, info.value.hint


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="does not exist.*toolbridge init"):
        load_settings(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("name", "text", "hint"),
    [
        ("toolbridge.toml", '[server]\nport = 8080\n[connectors.util]\nkind = "python"\n', "YAML, not TOML"),
        ("tb.yaml", "[server]\nport = 8080\n\n[agents.bob]\nscopes = []\n", "YAML, not TOML"),
        ("tb.yaml", "server:\n\tport: 8080\n", "indent with spaces, not tabs"),
        ("tb.yaml", "server:\n  port: 8080\n   host: x\n", "each key ends with ':' and a space"),
    ],
)
def test_a_file_that_is_not_yaml_says_how_to_fix_it(tmp_path: Path, name: str, text: str, hint: str) -> None:
    """'not valid YAML: expected '<document start>'…' alone: no hint, for a TOML file either."""
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigFileError, match="not valid YAML") as info:
        load_settings(tmp_path / name)
    assert info.value.hint is not None and hint in info.value.hint


def test_a_folder_given_as_the_configuration_names_the_file_in_it(tmp_path: Path) -> None:
    """'cannot read the file: [Errno 21] Is a directory' and no hint."""
    with pytest.raises(ConfigFileError, match="this is a folder, not a configuration file") as info:
        load_settings(tmp_path)
    assert info.value.hint is not None and "toolbridge init" in info.value.hint
    (tmp_path / "toolbridge.yaml").write_text("version: 1\n")
    with pytest.raises(ConfigFileError) as info:
        load_settings(tmp_path)
    assert info.value.hint == f"pass the file itself: --config {tmp_path / 'toolbridge.yaml'}"


def test_starter_file_parses_and_has_comments() -> None:
    settings = parse_settings(STARTER_CONFIG)
    assert settings.server.port == 8080 and settings.connectors == {}
    assert STARTER_CONFIG.count("#") > 10


@pytest.mark.anyio
async def test_quickstart_builds_a_working_hub(in_tmp_dir: Path) -> None:
    settings = load_settings(EXAMPLES / "quickstart.yaml")
    assert settings.server.database.endswith(".toolbridge/toolbridge.db")
    hub = Hub.from_settings(
        settings.model_copy(
            update={"server": settings.server.model_copy(update={"database": "sqlite+aiosqlite:///:memory:"})}
        )
    )
    assert "workspace.read" in [t.name for t in hub.catalog]
    assert [t.name for t in hub.catalog if not t.name.startswith("workspace.")] == [
        "notes.add",
        "notes.delete",
        "notes.list",
        "util.calculate",
        "util.now",
        "util.text_stats",
    ]
    assert hub.catalog.get("notes.delete").annotations.destructive
    async with hub:
        note = await hub.call(Principal.local(), "notes.add", {"text": "hello", "tags": ["t"]})
        listed = await hub.call(Principal.local(), "notes.list", {"tag": "t"})
        assert listed.value == [note.value]
        assert (
            await hub.call(Principal.local(), "util.calculate", {"expression": "(17+4)*3/7"})
        ).value == 9.0
        key = await hub.agents.create("reader")
        reader = await hub.authenticate(key)
        assert all(t.annotations.read_only for t in hub.list_tools(reader))


def test_bad_function_reference_names_the_entry(tmp_path: Path) -> None:
    config = tmp_path / "toolbridge.yaml"
    config.write_text(
        "connectors:\n  x:\n    kind: python\n    tools:\n      - function: nosuchmodule_zz:f\n"
    )
    with pytest.raises(ConfigurationError) as info:
        Hub.from_file(config)
    assert str(info.value).startswith(
        f"{config}:5: connectors.x.tools.0.function: cannot import module 'nosuchmodule_zz'"
    )
    assert info.value.hint is not None and f"in {tmp_path} (the config file's folder" in info.value.hint


def test_a_misspelt_function_is_located_and_gets_the_modules_functions(tmp_path: Path) -> None:
    """'connectors.x.tools[0]: module 'mytools' has no attribute 'helo'' with 'check the name': no file,
    no line, no guess."""
    (tmp_path / "mytools.py").write_text(
        "from typing import Literal\n\nclass Shape:\n    pass\n\n"
        "def hello(name: str) -> str:\n    return name\n\ndef goodbye() -> str:\n    return 'bye'\n"
    )
    config = tmp_path / "toolbridge.yaml"
    config.write_text(
        "connectors:\n  x:\n    kind: python\n    tools:\n      - function: mytools:hello\n"
        "      - function: mytools:helo\n"
    )
    with pytest.raises(ConfigurationError) as info:
        Hub.from_file(config)
    assert str(info.value).startswith(f"{config}:6: connectors.x.tools.1.function: module 'mytools' (")
    assert info.value.hint == "did you mean 'hello'?; its functions: goodbye, hello"


def test_bad_scope_in_config_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "toolbridge.yaml"
    config.write_text("agents:\n  a:\n    scopes: ['Notes.*:admin']\n")
    with pytest.raises(ConfigurationError, match=r"agents.a.scopes: scope 'Notes.\*:admin'"):
        Hub.from_file(config)


def test_resilience_block_builds_a_policy_and_bad_rates_are_located() -> None:
    text = (
        "connectors:\n  n:\n    kind: python\n    tools: []\n    resilience:\n"
        "      retry: {max_attempts: 5}\n      rate: 5000/hour\n"
        "agents:\n  a:\n    scopes: ['*']\n    rate: 10/minute\n"
    )
    settings = parse_settings(text)
    hub = Hub.from_settings(settings)
    assert hub.resilience.state("n").policy.retry.max_attempts == 5
    assert hub.resilience.state("n").policy.rate == "5000/hour"
    with pytest.raises(ConfigFileError, match=r":7: connectors.n.resilience.rate: .*is not a rate"):
        parse_settings(text.replace("5000/hour", "lots"))
    with pytest.raises(ConfigFileError, match=r":11: agents.a.rate: .*is not a rate"):
        parse_settings(text.replace("10/minute", "fast"))


def test_every_retry_budget_knob_is_settable_per_connector() -> None:
    """Regression: budget_ratio (and budget_min) could not be set in toolbridge.yaml."""
    knobs = {
        "max_attempts": 6,
        "base_delay": 0.25,
        "max_delay": 5.0,
        "attempt_timeout": 7.0,
        "max_retry_after": 30.0,
        "budget_ratio": 0.2,
        "budget_min": 5,
        "throttle_max_tokens": 50.0,
        "throttle_token_ratio": 0.5,
    }
    flow = ", ".join(f"{k}: {v}" for k, v in knobs.items())
    text = f"connectors:\n  n:\n    kind: python\n    tools: []\n    resilience:\n      retry: {{{flow}}}\n"
    retry = Hub.from_settings(parse_settings(text)).resilience.state("n").policy.retry
    assert {k: getattr(retry, k) for k in knobs} == knobs
    assert set(RetrySettings.model_fields) <= {f.name for f in dataclasses.fields(RetryPolicy)}


def test_every_outlier_ejection_knob_is_settable_per_connector_and_checked() -> None:
    knobs = {
        "enabled": False,
        "consecutive_failures": 3,
        "base_ejection_seconds": 10.0,
        "max_ejection_seconds": 120.0,
        "max_ejection_percent": 25.0,
        "active_seconds": 60.0,
    }
    flow = ", ".join(f"{k}: {str(v).lower()}" for k, v in knobs.items())
    text = f"connectors:\n  n:\n    kind: python\n    tools: []\n    resilience:\n      outlier: {{{flow}}}\n"
    outlier = Hub.from_settings(parse_settings(text)).resilience.state("n").policy.outlier
    assert {k: getattr(outlier, k) for k in knobs} == knobs
    assert Hub.from_settings(parse_settings(text.replace(flow, ""))).resilience.state("n").policy.outlier == (
        OutlierPolicy()
    )
    assert (OutlierPolicy().consecutive_failures, OutlierPolicy().base_ejection_seconds) == (5, 30.0)
    assert OutlierPolicy().max_ejection_percent == 10.0  # RELIABILITY.md: 5 failures; 30 s × n; ≤ 10 %
    with pytest.raises(ConfigFileError, match=r":6: connectors.n.resilience.outlier.max_ejection_percent"):
        parse_settings(text.replace("25.0", "150"))


def test_the_config_file_accepts_exactly_the_schemes_the_credentials_layer_implements() -> None:
    """settings.py spells the scheme names out so reading a config file does not import the credentials
    package; this keeps the two lists from drifting apart."""
    from typing import get_args

    from toolbridge.credentials import SCHEMES
    from toolbridge.settings import ConnectionSettings

    models = get_args(get_args(ConnectionSettings)[0])
    assert sorted(get_args(m.model_fields["scheme"].annotation)[0] for m in models) == sorted(SCHEMES)


@pytest.mark.parametrize(
    ("block", "key", "message"),
    [
        ("{scheme: api_key, provider: github}", "provider", "unknown key"),
        ("{scheme: bearer, username: alice}", "username", "unknown key"),
        ("{scheme: sigv4, region: eu-west-1}", "service", "required but missing"),
        ("{scheme: token_exchange, provider: corp}", "subject_connector", "required but missing"),
        ("{scheme: oauth2, client_secret: hunter2}", "client_secret", "not the secret"),
        # a vault reference is one, but not read here: it was told "… not the secret"
        ("{scheme: bearer, secret: 'vault:api-token'}", "secret", "not the vault: write 'env:API_KEY'"),
        ("{scheme: oauth2, client_secret: 'vault:cs'}", "client_secret", "not the vault: write 'env:CLIENT_"),
        ("{scheme: bearr}", "scheme", "'bearr' is not a valid choice"),
    ],
)
def test_a_setting_that_does_not_fit_the_connection_scheme_is_reported_at_its_line(
    block: str, key: str, message: str
) -> None:
    text = f"connectors:\n  svc:\n    kind: openapi\n    spec: api.json\n    connections: {block}\n"
    with pytest.raises(ConfigFileError) as caught:
        parse_settings(text, source=Path("toolbridge.yaml"))
    error = caught.value
    assert (error.line, error.key) == (5, f"connectors.svc.connections.{key}")
    assert message in error.message


@pytest.mark.parametrize(
    ("text", "line", "key", "hint"),
    [
        (  # the commonest first mistake: another tool's word for the connector's kind
            "connectors:\n  slack:\n    type: openapi\n    spec: slack.json\n",
            2,
            "connectors.slack.kind",
            "write 'kind: openapi': the key is 'kind', not 'type'",
        ),
        (
            "connectors:\n  svc:\n    kind: openapi\n    spec: a.json\n    connections: {type: bearer}\n",
            5,
            "connectors.svc.connections.scheme",
            "write 'scheme: bearer': the key is 'scheme', not 'type'",
        ),
        (  # "header" is a scheme, but "location" is a key of one: no guess from it
            "connectors:\n  svc:\n    kind: openapi\n    spec: a.json\n"
            "    connections: {name: X-Key, location: header}\n",
            5,
            "connectors.svc.connections.scheme",
            "add 'scheme: api_key' (or another)",
        ),
    ],
)
def test_a_missing_kind_or_scheme_names_the_choices_and_the_key_written_instead(
    text: str, line: int, key: str, hint: str
) -> None:
    """Pydantic's own words were "Unable to extract tag using discriminator 'kind'"."""
    with pytest.raises(ConfigFileError) as caught:
        parse_settings(text, source=Path("toolbridge.yaml"))
    error = caught.value
    assert (error.line, error.key, error.hint) == (line, key, hint)
    assert f": missing {key.rsplit('.', 1)[1]!r}: say which one this is, one of: " in error.message
    assert "discriminator" not in str(error)


def test_a_wrong_key_of_a_connection_names_the_valid_keys_of_its_scheme() -> None:
    text = "connectors:\n  svc:\n    kind: openapi\n    spec: api.json\n    connections:\n"
    text += "      scheme: basic\n      usernme: alice\n"
    with pytest.raises(ConfigFileError) as caught:
        parse_settings(text, source=Path("toolbridge.yaml"))
    assert (caught.value.line, caught.value.key) == (7, "connectors.svc.connections.usernme")
    assert caught.value.hint is not None and "did you mean 'username'" in caught.value.hint
    assert "provider" not in caught.value.hint  # the keys of a basic connection, not of every scheme


@pytest.mark.parametrize(
    "text",
    [
        "connectors:\n  a:\n    kind: openapi\n    spec: s.json\n"
        "    connections: {scheme: api_key, name: X-Key, secret: CANARY-raw-4242}\n",
        "connectors:\n  a:\n    kind: openapi\n    spec: s.json\n"
        "    connections: {scheme: header, secret: {token: CANARY-raw-4242}}\n",
        "connectors:\n  a:\n    kind: openapi\n    spec: s.json\n    connections:\n"
        "      scheme: client_credentials\n      client_id: c\n      client_secret: CANARY-raw-4242\n",
        "hooks:\n  gh:\n    verifier: github\n    secret: CANARY-raw-4242\n",
        "server:\n  database_pool: CANARY-raw-4242\n",  # any value of a key that is not a credential: shown
    ],
)
def test_a_secret_pasted_into_the_file_is_not_repeated_in_the_error(text: str) -> None:
    """The error quoted the value (``(got 'CANARY-…')``): into terminals, service logs and CI output."""
    with pytest.raises(ConfigFileError) as refused:
        parse_settings(text)
    said = f"{refused.value.message} {refused.value.hint}"
    assert ("CANARY" in said) is text.startswith("server:"), said
    assert "more problem" not in said  # the error shown is the secret's


def test_a_redis_url_shares_the_limits_of_every_hub_built_from_the_file() -> None:
    from toolbridge.resilience import RedisLimiter

    settings = parse_settings("server:\n  redis: redis://:pw@127.0.0.1:6379/3\n  redis_prefix: 'staging:'\n")
    hub = Hub.from_settings(settings)
    assert isinstance(hub.resilience.limiter, RedisLimiter)
    assert hub.resilience.holds is hub.resilience.limiter  # the upstreams' holds are shared too
    assert not isinstance(Hub.from_settings(parse_settings("version: 1\n")).resilience.limiter, RedisLimiter)


@pytest.mark.parametrize("url", ["http://:s3cret@cache:6379/0", "redis://:s3cret@cache:port/0", "redis://"])
def test_a_redis_url_that_is_none_is_located_without_its_password(url: str) -> None:
    with pytest.raises(ConfigFileError) as info:
        parse_settings(f"server:\n  redis: '{url}'\n")
    assert "<toolbridge.yaml>:2: server.redis:" in str(info.value) and "is not a Redis URL" in str(info.value)
    assert "s3cret" not in str(info.value) + (info.value.hint or "")
