"""Hostile URLs for the SSRF check (tests/test_ssrf.py): every one must be refused before a connection.

One list for every place the hub fetches a URL someone else chose. Ports are the defaults (80, 443) unless
a URL names a service's port: a guard that judged addresses wrongly must not hide behind its port rule.
:data:`HOSTS` is what the name lookups answer (an injected resolver in process, ``/etc/hosts`` in the
network namespace); :data:`LO_ADDRESSES` are added to ``lo`` there, so a connection to them is counted.
"""

from __future__ import annotations

PUBLIC = "93.184.215.14"
"""A public-looking address: the trap of a site without ``allow_hosts`` (``trap.test`` resolves to it)."""

HOSTS: dict[str, tuple[str, ...]] = {
    "trap.test": (PUBLIC,),
    "as.test": (PUBLIC,),
    "internal.test": ("10.0.0.1",),
    "metadata.test": ("169.254.169.254",),
    "loopback.test": ("127.0.0.1",),
    "mapped.test": ("::ffff:10.0.0.1",),
    "ula.test": ("fd00:ec2::254",),
    "sitelocal.test": ("fec0::1",),
    "split.test": (PUBLIC, "127.0.0.1"),  # one public, one loopback answer: any private one refuses
    "metadata.google.internal": ("169.254.169.254",),
}

SERVICE_PORTS = (21, 22, 70, 5432, 6379, 8080, 11211)

HOSTILE = [
    # loopback, in every spelling
    "http://127.0.0.1/",
    "https://127.0.0.1/",
    "http://127.0.0.1:80/admin",
    "http://127.1/",
    "http://127.0.1/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0x7f.1/",
    "http://0177.0.0.1/",
    "http://017700000001/",
    "http://127.000.000.001/",
    "http://127.127.127.127/",
    "http://[::1]/",
    "http://[0:0:0:0:0:0:0:1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[2002:7f00:1::]/",
    "http://localhost/",
    "http://localhost./",
    "http://LOCALHOST/",
    "http://foo.localhost/",
    "http://a.b.localhost./",
    "http://localhost.localdomain/",
    "http://loopback.test/",
    # the unspecified address (reaches the local machine)
    "http://0.0.0.0/",
    "http://0/",
    "http://[::]/",
    # private ranges, also IPv4-mapped
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://172.31.255.254/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://198.18.0.1/",
    "http://[::ffff:10.0.0.1]/",
    "http://[::ffff:c0a8:101]/",
    "http://internal.test/",
    "http://mapped.test/",
    "http://split.test/",
    # link-local and cloud metadata
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.170.2/v2/credentials",
    "http://2852039166/latest/meta-data/",
    "http://0xa9fea9fe/",
    "http://[fe80::1]/",
    "http://[fe80::1%25lo]/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://metadata.test/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    # unique local IPv6
    "http://[fc00::1]/",
    "http://[fd12:3456:789a::1]/",
    "http://ula.test/",
    # special-purpose ranges ipaddress counts as global (Python 3.11): site-local IPv6, IETF protocol
    # assignments, 6to4 relay anycast (also 6to4-wrapped), documentation
    "http://[fec0::1]/",
    "http://[fec0::1]:6379/",
    "http://sitelocal.test/",
    "http://192.0.0.8/",
    "http://192.88.99.1/",
    "http://[2002:c058:6301::]/",
    "http://[3fff::1]/",
    # multicast, broadcast, reserved
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://240.0.0.1/",
    "http://[ff02::1]/",
    # a service's port on loopback
    "http://127.0.0.1:6379/",
    "http://127.0.0.1:5432/",
    "http://[::1]:8080/",
    "http://127.0.0.1:22/",
    # user info
    "http://example.com@127.0.0.1/",
    "http://user:pass@127.0.0.1/",
    "http://trap.test:80@10.0.0.1/",
    # backslashes, encodings, whitespace
    "http://trap.test\\@127.0.0.1/",
    "http://127.0.0.1\\.trap.test/",
    "http://%31%32%37.0.0.1/",
    "http://127%2E0%2E0%2E1/",
    "http://\t127.0.0.1/",
    "http://127.0.0.1 /",
    "http://\u2460\u2461\u2466.0.0.1/",
    "//127.0.0.1/",
    "http://" + "a" * 64 + ".test/",  # a label no resolver can encode (idna: over 63 characters)
    # other schemes
    "file:///etc/passwd",
    "gopher://127.0.0.1:70/_x",
    "ftp://127.0.0.1/",
    "dict://127.0.0.1:11211/stat",
    "data:text/plain,hello",
    "ldap://127.0.0.1/",
]

LO_ADDRESSES = (
    "10.0.0.1/32",
    "172.16.0.1/32",
    "172.31.255.254/32",
    "192.168.1.1/32",
    "100.64.0.1/32",
    "198.18.0.1/32",
    "169.254.169.254/32",
    "169.254.170.2/32",
    f"{PUBLIC}/32",
    "fd00:ec2::254/128",
    "fc00::1/128",
    "fd12:3456:789a::1/128",
    "64:ff9b::7f00:1/128",
    "2002:7f00:1::/128",
    "fec0::1/128",
    "192.0.0.8/32",
    "192.88.99.1/32",
    "2002:c058:6301::/128",
    "3fff::1/128",
)
"""Added to ``lo`` inside the namespace: a connection there reaches a counting listener."""
