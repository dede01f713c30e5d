"""Assembly (settings → objects): one registry of connector kinds, parts handed over explicitly."""

from __future__ import annotations

import typing

from toolbridge.assembly._kinds import KINDS
from toolbridge.settings import ConnectorSettings


def test_every_connector_kind_of_the_config_file_has_a_builder() -> None:
    union = typing.get_args(typing.get_args(ConnectorSettings)[0])
    kinds = {typing.get_args(model.model_fields["kind"].annotation)[0] for model in union}
    assert set(KINDS) == kinds
