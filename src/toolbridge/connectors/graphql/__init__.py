"""The GraphQL connector: an API's root ``Query`` and ``Mutation`` fields become tools.

``GraphQLConnector.from_schema(name, "https://api.example.com/graphql", "schema.graphql")`` reads the
schema (SDL or an introspection result; without a file it asks the endpoint by introspection) and makes
one tool per root field; calls are POSTs of the operation with the call's arguments as variables.
docs/graphql.md describes the settings, names, selections and errors.
"""

from toolbridge.connectors.graphql._connector import GraphQLConnector
from toolbridge.connectors.graphql._schema import MAX_SCHEMA_BYTES, introspect, load_schema, parse_schema
from toolbridge.connectors.graphql._tools import Operation

__all__ = ["MAX_SCHEMA_BYTES", "GraphQLConnector", "Operation", "introspect", "load_schema", "parse_schema"]
