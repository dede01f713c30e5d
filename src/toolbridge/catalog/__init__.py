"""Tools and the registry that holds them."""

from toolbridge.catalog._compact import plain_json
from toolbridge.catalog._registry import Catalog
from toolbridge.catalog._search import SearchHit, SearchResult, summary_of
from toolbridge.catalog._tool import (
    MCP_NAME_META_KEY,
    MCP_RESULT_META_KEY,
    NAME_PATTERN,
    QUARANTINE_META_KEY,
    Tool,
    ToolAnnotations,
    check_tool_name,
    quarantine_error,
)

__all__ = [
    "Catalog",
    "MCP_NAME_META_KEY",
    "MCP_RESULT_META_KEY",
    "NAME_PATTERN",
    "QUARANTINE_META_KEY",
    "SearchHit",
    "SearchResult",
    "Tool",
    "ToolAnnotations",
    "check_tool_name",
    "plain_json",
    "quarantine_error",
    "summary_of",
]
