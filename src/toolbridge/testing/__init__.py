"""The public test kit: what toolbridge uses to test connectors, users can use to test theirs.

- :class:`Upstream` / :func:`running_upstream`: a scripted HTTP upstream on 127.0.0.1 that counts effects;
- :class:`ChaosConnector` / :class:`Fault`: seeded fault injection at a connector's boundary;
- :class:`FaultProxy` / :class:`ProxyMode`: a loopback TCP proxy injecting network faults.
"""

from toolbridge.testing._chaos import ChaosConnector, Fault, FaultKind
from toolbridge.testing._proxy import FaultProxy, ProxyMode
from toolbridge.testing._upstream import Reply, Upstream, running_upstream

__all__ = [
    "ChaosConnector",
    "Fault",
    "FaultKind",
    "FaultProxy",
    "ProxyMode",
    "Reply",
    "Upstream",
    "running_upstream",
]
