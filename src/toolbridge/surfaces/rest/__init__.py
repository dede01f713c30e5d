"""The REST surface (FastAPI), mounted at ``/v1``."""

from toolbridge.surfaces.rest._api import create_rest_app, problem_response, tool_document
from toolbridge.surfaces.rest._workspace import create_workspace_app

__all__ = ["create_rest_app", "create_workspace_app", "problem_response", "tool_document"]
