"""Per-call overhead of credential injection with a cached token (goal: ≤ 20 µs median).

Measures, 20,000 times each, interleaved in rounds so machine noise hits all alike:

* ``resolve`` — ``CredentialManager.resolve`` on a warm cache (connection lookup, expiry check, the
  ``(credentials.use)`` audit entry queued to the running audit writer, the credentials object);
* ``inject`` — the scheme's ``httpx2.Auth`` flow putting the token on a request;
* ``resolve + inject`` — both, which is what a call with credentials pays over one without.

    uv run python bench/credentials.py [--calls N] [--scheme oauth2|api_key]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import anyio
import httpx2

from toolbridge.audit import AuditLog
from toolbridge.credentials import (
    AuthConfig,
    CredentialManager,
    Keyring,
    MasterKey,
    Material,
    ProviderDef,
    Secret,
    StaticKeys,
    TokenSet,
    Vault,
)
from toolbridge.policy import Principal
from toolbridge.storage import Database


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def binding(scheme: str) -> AuthConfig:
    if scheme == "api_key":
        return AuthConfig(scheme="api_key", name="X-Api-Key")
    provider = ProviderDef(
        name="bench",
        display_name="Bench",
        scope_separator=" ",
        authorize_url="https://auth.invalid/authorize",
        token_url="https://auth.invalid/token",
    )
    return AuthConfig(scheme="oauth2", provider=provider, client_id="bench")


async def measure(calls: int, scheme: str) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as folder:
        db = Database(f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}")
        async with db, AuditLog(db) as audit:
            vault = Vault(db, StaticKeys(Keyring(MasterKey.generate())))
            async with CredentialManager(vault, {"svc": binding(scheme)}, cache_ttl=3600) as manager:
                manager.audit = audit
                token = TokenSet(Secret("bench-access-token-0123456789"), Secret("r"), time.time() + 86_400)
                material = (
                    Material(tokens=token)
                    if scheme == "oauth2"
                    else Material(secret=Secret("bench-key-0123"))
                )
                await manager.add("svc", "default", material)
                principal = Principal.local()
                request = httpx2.Request("GET", "https://api.invalid/items")
                creds = await manager.resolve("svc", principal, None)

                async def resolve() -> None:
                    await manager.resolve("svc", principal, None, request_id="r", tool="svc.items")

                async def inject() -> None:
                    next(creds.auth.auth_flow(request))

                async def both() -> None:
                    resolved = await manager.resolve("svc", principal, None, request_id="r", tool="svc.items")
                    next(resolved.auth.auth_flow(request))

                targets = {"resolve": resolve, "inject": inject, "resolve + inject": both}
                samples: dict[str, list[float]] = {name: [] for name in targets}
                for _ in range(1000):
                    await both()
                rounds = 10
                for _ in range(rounds):
                    for name, fn in targets.items():
                        for _ in range(calls // rounds):
                            start = time.perf_counter_ns()
                            await fn()
                            samples[name].append((time.perf_counter_ns() - start) / 1000)
                    await audit.flush()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--scheme", choices=["oauth2", "api_key"], default="oauth2")
    args = parser.parse_args()
    samples = anyio.run(measure, args.calls, args.scheme)
    print(f"credential injection, scheme {args.scheme}, {args.calls:,} calls each (µs)")
    print(f"{'':<20}{'median':>10}{'p99':>10}")
    for name, values in samples.items():
        print(f"{name:<20}{statistics.median(values):>10.2f}{pct(values, 0.99):>10.2f}")
    overhead = statistics.median(samples["resolve + inject"])
    print(f"goal ≤ 20 µs median: {'met' if overhead <= 20 else 'NOT met'} ({overhead:.2f} µs)")


if __name__ == "__main__":
    main()
