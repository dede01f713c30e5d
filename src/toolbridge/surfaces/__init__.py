"""Surfaces: the ways in (MCP, REST, CLI). Each ends in ``Hub.call`` and re-implements none of it."""
