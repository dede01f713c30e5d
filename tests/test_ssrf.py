"""SSRF: 84 hostile URLs at every place the hub fetches a URL it was given or that a remote party gave it.

Each site (tests/_ssrf_sites.py) is driven with every hostile URL (tests/_hostile.py), directly and through
a trap upstream that answers with it. What counts: each is refused with the site's own error, and no
connection is made. In process, the network is a mock that counts every request not for the trap. In a
fresh loopback-only network namespace (when this process may make one), the same drivers run against the
real network: the private and metadata addresses are on ``lo`` there, with counting listeners on every
port the URLs name, so a guard bug would be counted — and could not reach this machine's services.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests._patience import patience
from tests._ssrf_sites import CONTROL, MOCK_ONLY, SITES, applicable, control, mock_net

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("site", sorted(SITES))
async def test_every_hostile_url_is_refused_before_a_request(site: str, tmp_path: Path) -> None:
    net, leaks = mock_net(tmp_path)
    not_refused = await SITES[site](net, applicable(site))
    assert not_refused == [], f"{site}: not refused with its error"
    assert leaks == [], f"{site}: requests reached the network"


@pytest.mark.parametrize("site", sorted(SITES))
async def test_a_public_url_gets_through_every_site(site: str, tmp_path: Path) -> None:
    """The control: each driver does see a URL that is not refused (the trap answers it, or fails it)."""
    net, leaks = mock_net(tmp_path)
    assert await SITES[site](net, control(site)) == [CONTROL]
    assert leaks == []


def _namespace_command() -> list[str] | None:
    """How to enter a new network and mount namespace here (root: ``unshare``; else a user namespace)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return None
    for command in (["unshare", "--net", "--mount"], ["unshare", "--map-root-user", "--net", "--mount"]):
        try:
            probe = subprocess.run([*command, "true"], capture_output=True, timeout=patience(30))
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return command
    return None


def test_in_a_loopback_only_namespace_no_hostile_url_gets_a_connection(tmp_path: Path) -> None:
    command = _namespace_command()
    if command is None:
        pytest.skip(
            "cannot create a network namespace here (unshare --net, as root or in a user namespace): "
            "the real-socket half of the SSRF check did not run; the in-process half did"
        )
    root = Path(__file__).resolve().parent.parent
    report = tmp_path / "report.json"
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [*command, sys.executable, "-m", "tests._ssrf_netns", str(tmp_path), str(report)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=patience(120),
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(report.read_text())
    controls = {site: [CONTROL] for site in SITES if site not in MOCK_ONLY}
    assert result["not_refused"] == controls, "only the public control URL may get through"
    assert result["connections"] == [], "connections reached the hostile addresses"
    assert result["trap_hits"] > 0, "the trap was not reached: the namespace check proved nothing"
