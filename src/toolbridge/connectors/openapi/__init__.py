"""The OpenAPI connector: REST APIs described by Swagger 2.0 / OpenAPI 3.0 / 3.1 documents become tools.

``OpenAPIConnector.from_spec(name, "openapi.yaml", base_url=...)`` loads the document (a file or URL, and
every file its relative ``$ref``s reach), turns each operation into a tool and reports, in
:class:`IngestReport`, every operation it skipped, degraded or excluded, with the reason and JSON pointer.
"""

from toolbridge.connectors.openapi._connector import OpenAPIConnector
from toolbridge.connectors.openapi._ingest import (
    Ingested,
    IngestOptions,
    OperationFilter,
    OperationOverride,
    ingest,
)
from toolbridge.connectors.openapi._loader import MAX_SPEC_BYTES, SpecSource, load_spec
from toolbridge.connectors.openapi._model import IngestReport, Issue, SecurityScheme
from toolbridge.connectors.openapi._paginate import Pagination

__all__ = [
    "IngestOptions",
    "IngestReport",
    "Ingested",
    "Issue",
    "MAX_SPEC_BYTES",
    "OpenAPIConnector",
    "OperationFilter",
    "OperationOverride",
    "Pagination",
    "SecurityScheme",
    "SpecSource",
    "ingest",
    "load_spec",
]
