"""DNS above the wire codec: a sans-IO stub resolver, a small authoritative server core and
/etc/hosts parsing. Neither does I/O: the UDP glue moves their datagrams (see each module).
"""

from pystack.dns.hosts import load_hosts_file, numeric_address, parse_hosts
from pystack.dns.resolver import (
    Lookup,
    Resolver,
    ResolverError,
    ResolverSettings,
    getaddrinfo_errno,
)
from pystack.dns.server import DNSServer

__all__ = [
    "DNSServer",
    "Lookup",
    "Resolver",
    "ResolverError",
    "ResolverSettings",
    "getaddrinfo_errno",
    "load_hosts_file",
    "numeric_address",
    "parse_hosts",
]
