"""The REST surface (FastAPI), mounted at ``/v1``."""

from toolbridge.surfaces.rest._api import create_rest_app, problem_response, tool_document

__all__ = ["create_rest_app", "problem_response", "tool_document"]
