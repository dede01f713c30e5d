"""Credentials: the vault (envelope encryption), auth schemes, connections, OAuth connect and refresh."""

from toolbridge.credentials._config import SCHEMES, AuthConfig, Scheme
from toolbridge.credentials._connect import Authorization, ConnectFlow
from toolbridge.credentials._jwt import JwtAssertion, ServiceAccount
from toolbridge.credentials._keys import KeyFile, Keyring, KeySource, MasterKey, StaticKeys
from toolbridge.credentials._manager import CredentialManager, ResolvedCredentials
from toolbridge.credentials._mcp_auth import McpAuthorization, discover_mcp_authorization
from toolbridge.credentials._providers import ProviderDef, ServerMetadata, builtin_providers, load_providers
from toolbridge.credentials._schemes import (
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    HeaderTemplateAuth,
    SigV4Auth,
    StaticToken,
    TokenSource,
)
from toolbridge.credentials._secret import Secret, SecretRef, resolve_reference
from toolbridge.credentials._store import Connection, ConnectionStore, Material, State
from toolbridge.credentials._tokens import TokenSet
from toolbridge.credentials._vault import Vault, VaultError, rotate_master_key

__all__ = [
    "ApiKeyAuth",
    "AuthConfig",
    "Authorization",
    "BasicAuth",
    "BearerAuth",
    "ConnectFlow",
    "Connection",
    "ConnectionStore",
    "CredentialManager",
    "HeaderTemplateAuth",
    "JwtAssertion",
    "KeyFile",
    "KeySource",
    "Keyring",
    "MasterKey",
    "Material",
    "McpAuthorization",
    "ProviderDef",
    "ResolvedCredentials",
    "SCHEMES",
    "Scheme",
    "Secret",
    "SecretRef",
    "ServerMetadata",
    "ServiceAccount",
    "SigV4Auth",
    "State",
    "StaticKeys",
    "StaticToken",
    "TokenSet",
    "TokenSource",
    "Vault",
    "VaultError",
    "builtin_providers",
    "discover_mcp_authorization",
    "load_providers",
    "resolve_reference",
    "rotate_master_key",
]
