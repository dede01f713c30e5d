"""Connectors: one per integration approach. Each turns a tool call into a request on its transport."""

from toolbridge.connectors._base import Connector, Credentials, Invocation, key_carrier
from toolbridge.connectors._events import HubLink, ReportsToHub

__all__ = ["Connector", "Credentials", "HubLink", "Invocation", "ReportsToHub", "key_carrier"]
