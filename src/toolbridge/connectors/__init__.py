"""Connectors: one per integration approach. Each turns a tool call into a request on its transport."""

from toolbridge.connectors._base import Connector, Credentials, Invocation, key_carrier

__all__ = ["Connector", "Credentials", "Invocation", "key_carrier"]
