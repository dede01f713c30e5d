"""The public test kit: what toolbridge uses to test connectors, users can use to test theirs.

- :class:`Upstream` / :func:`running_upstream`: a scripted HTTP upstream on 127.0.0.1 that counts effects;
- :class:`ChaosConnector` / :class:`Fault`: seeded fault injection at a connector's boundary;
- :class:`FaultProxy` / :class:`ProxyMode`: a loopback TCP proxy injecting network faults;
- :class:`ChaosUpstream`: a real HTTP API (its own OpenAPI document, idempotency keys, effect counters)
  that injects seeded faults of every kind — run it as a process with
  ``python -m toolbridge.testing._chaos_upstream``;
- :func:`chaos_run` / :class:`ChaosPlan` / :class:`ChaosReport`: a whole deployment (servers, workers, one
  database) driven over REST and MCP while processes are killed with SIGKILL, then reconciled against
  the upstream's effect counters: duplicates and losses per outcome the agent saw.
"""

from toolbridge.testing._chaos import ChaosConnector, Fault, FaultKind
from toolbridge.testing._chaos_run import ChaosPlan, ChaosReport, chaos_run
from toolbridge.testing._chaos_upstream import ChaosUpstream
from toolbridge.testing._proxy import FaultProxy, ProxyMode
from toolbridge.testing._upstream import Reply, Upstream, running_upstream

__all__ = [
    "ChaosConnector",
    "ChaosPlan",
    "ChaosReport",
    "ChaosUpstream",
    "Fault",
    "FaultKind",
    "FaultProxy",
    "ProxyMode",
    "Reply",
    "Upstream",
    "chaos_run",
    "running_upstream",
]
