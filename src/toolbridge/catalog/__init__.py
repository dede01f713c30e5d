"""Tools and the registry that holds them."""

from toolbridge.catalog._registry import Catalog
from toolbridge.catalog._tool import NAME_PATTERN, Tool, ToolAnnotations, check_tool_name

__all__ = ["Catalog", "NAME_PATTERN", "Tool", "ToolAnnotations", "check_tool_name"]
