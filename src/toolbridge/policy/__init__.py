"""Who may call what: principals, scopes and API keys."""

from toolbridge.policy._agents import AgentInfo, AgentStore
from toolbridge.policy._keys import generate_key, hash_key, key_prefix
from toolbridge.policy._principal import Principal, Scope

__all__ = ["AgentInfo", "AgentStore", "Principal", "Scope", "generate_key", "hash_key", "key_prefix"]
