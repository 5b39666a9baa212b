"""A sans-IO DNS stub resolver for A records, shaped after lwIP's ``core/dns.c``.

``resolve(name, now)`` returns a ``Lookup``. It is ``done`` at once for a numeric address (lwIP's
``ip4addr_aton`` forms: ``"10.1"``, ``"0x7f.1"``...), ``localhost`` and the hosts table, a cache
hit (positive or negative) and every immediate error; otherwise its query waits in
``datagrams_to_send(now)`` as ``(payload, (server address, port), source port)``. The caller sends
it over UDP from that source port and hands every datagram arriving on that port to
``process_response``; ``run_timers(now)`` at ``next_deadline()`` retransmits and finally fails. The
resolver never does I/O, reads no clock and draws randomness only from the injected ``rng``.

Policy (lwIP 2.1 unless noted):

- Each query has a random 16-bit id and a random source port (RFC 5452 section 9.2; lwIP
  ``LWIP_DNS_SECURE``). A response is accepted only from the server and port the query went to,
  on the query's source port, with the query's id and an echo of its question (RFC 5452 3);
  anything else is counted (``dns.*`` counters) and ignored, so a spoofer cannot end a lookup.
- Retransmission as ``dns_check_entry``: ``tries`` (DNS_MAX_RETRIES, 4) transmissions per
  server, waiting ``timeout`` x 1, 1, 2, 3 (DNS_TMR_INTERVAL 1 s: 7 s per server), then the next
  server, then "timeout". Id and source port stay for the life of a query.
- At most ``max_in_flight`` queries (DNS_TABLE_SIZE, 4): one more fails with "too many lookups"
  (lwIP's ERR_MEM). Two lookups of one name share one query (and one ``Lookup``).
- CNAME chains inside an answer are followed up to ``max_cname`` links; an answer that ends in an
  alias without its address makes a new query for the target (new id and port).
- Positive answers are cached for their TTL (RFC 2181 8: above 2**31-1 means 0) clamped to
  [``min_ttl``, ``max_ttl``] (DNS_MAX_TTL, one week); NXDOMAIN and NODATA for
  min(SOA TTL, SOA MINIMUM, ``negative_ttl``) when the answer carries an SOA (RFC 2308 3, 5; lwIP
  caches no negative answers). The cache is LRU with ``cache_size`` entries.
- SERVFAIL, REFUSED and other error rcodes move on to the next server (lwIP fails at once), then
  fail; TC fails with
  "truncated" (there is no TCP fallback); a malformed response carrying the query's id fails with
  "malformed".

MicroPython's ``getaddrinfo`` raises ``OSError(n)`` with a negative lwIP ``err_t`` (modlwip.c
``lwip_getaddrinfo``; USOCKET.md section 3), ``getaddrinfo_errno`` gives ``n``:

- -16 (ERR_ARG): empty name, name of 256 bytes or more (``dns_gethostbyname`` checks both first).
- -6 (ERR_VAL): no DNS server configured at all (lwIP 2.1: "prevent calling found callback if no
  server is set, return error instead"). USOCKET.md lists "no server" under -2; lwIP's own source
  says -6. One constant below switches it.
- -1 (ERR_MEM): the query table is full.
- -2: every failure the lwIP callback reports with a NULL address: not found (NXDOMAIN, NODATA),
  timeout, server failure, refused, truncated, malformed, a name lwIP would send but no server
  accepts (an empty or over-long label).
"""

from __future__ import annotations

import dataclasses
import random
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from pystack.counters import DECLARED
from pystack.dns.hosts import numeric_address
from pystack.stats import Statistics
from pystack.wire.dns import (
    CLASS_IN,
    RCODE_NOERROR,
    RCODE_NXDOMAIN,
    RCODE_REFUSED,
    TYPE_A,
    TYPE_CNAME,
    TYPE_SOA,
    DNSMessage,
    DNSRecord,
    DomainNameError,
    SOAData,
    name_key,
)
from pystack.wire.errors import MalformedPacket

LOOPBACK = 0x7F000001
MAX_TTL_FIELD = 0x7FFFFFFF

NOT_FOUND = "not found"
TIMEOUT = "timeout"
NO_SERVER = "no server"
MALFORMED = "malformed"
REFUSED = "refused"
SERVER_FAILURE = "server failure"
TRUNCATED = "truncated"
EMPTY_NAME = "empty name"
NAME_TOO_LONG = "name too long"
BAD_NAME = "bad name"
TOO_MANY_LOOKUPS = "too many lookups"

ERR_MEM, ERR_VAL, ERR_ARG, CALLBACK_FAILURE = -1, -6, -16, -2
_ERRNO = {
    EMPTY_NAME: ERR_ARG,
    NAME_TOO_LONG: ERR_ARG,
    NO_SERVER: ERR_VAL,
    TOO_MANY_LOOKUPS: ERR_MEM,
}


class ResolverError(Exception):
    """Why a lookup failed; ``reason`` is one of the constants above."""

    def __init__(self, reason: str, name: str) -> None:
        super().__init__(f"{name!r}: {reason}")
        self.reason = reason
        self.name = name


def getaddrinfo_errno(error: ResolverError) -> int:
    """The negative lwIP error MicroPython's getaddrinfo raises as ``OSError`` for ``error``."""
    return _ERRNO.get(error.reason, CALLBACK_FAILURE)


@dataclass(frozen=True)
class ResolverSettings:
    servers: Sequence[tuple[int, int]] = ()
    timeout: float = 1.0
    tries: int = 4
    max_in_flight: int = 4
    cache_size: int = 16
    min_ttl: float = 0.0
    max_ttl: float = 604800.0
    negative_ttl: float = 300.0
    max_cname: int = 8
    hosts: Mapping[str, int] = field(default_factory=dict)
    source_ports: tuple[int, int] = (49152, 65535)  # RFC 6056's ephemeral range, inclusive

    def __post_init__(self) -> None:
        low, high = self.source_ports
        if not (self.timeout > 0 and self.tries >= 1 and self.cache_size >= 0):
            raise ValueError("timeout must be positive, tries at least 1, cache_size >= 0")
        if not 1 <= low <= high <= 65535 or not 1 <= self.max_in_flight <= high - low + 1:
            raise ValueError("bad source port range or max_in_flight")


class Lookup:
    """One name being resolved. ``addresses`` (A records, in answer order) or ``error`` is set
    when ``done``; ``canonical_name`` is the last name of a CNAME chain."""

    __slots__ = ("addresses", "canonical_name", "done", "error", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.done = False
        self.addresses: list[int] = []
        self.error: ResolverError | None = None
        self.canonical_name = name

    def __repr__(self) -> str:
        state = self.error.reason if self.error else self.addresses if self.done else "pending"
        return f"<Lookup {self.name!r} {state}>"


class _Query:
    """One question on the wire: its id and source port, the server it is at, and its tries."""

    __slots__ = ("deadline", "due", "hops", "id", "key", "lookup", "qname", "server",
                 "source_port", "tries")  # fmt: skip

    def __init__(self, lookup: Lookup, key: str, qname: str, hops: int, now: float) -> None:
        self.lookup, self.key, self.qname, self.hops = lookup, key, qname, hops
        self.id = self.source_port = self.server = self.tries = 0
        self.deadline = now
        self.due = True  # a transmission is waiting in datagrams_to_send


class _CacheEntry(NamedTuple):
    addresses: tuple[int, ...]  # empty: a negative entry
    canonical_name: str
    expires: float


class Resolver:
    """The resolver of one stack: a query table, a cache and a hosts table (see the module)."""

    def __init__(
        self, settings: ResolverSettings, rng: random.Random, statistics: Statistics | None = None
    ) -> None:
        self.settings = settings
        self.statistics = statistics if statistics is not None else Statistics(DECLARED)
        self._rng = rng
        self._servers = tuple(settings.servers)
        self._hosts: dict[str, int] = {"localhost": LOOPBACK}
        for name, address in settings.hosts.items():
            try:
                self._hosts[name_key(name)] = address
            except DomainNameError:
                continue
        self._cache: OrderedDict[str, _CacheEntry] = OrderedDict()
        self._queries: dict[int, _Query] = {}  # by source port
        self._by_name: dict[str, _Query] = {}  # by the lookup's name key

    # --- the application side ----------------------------------------------------------------

    def set_servers(self, servers: Sequence[tuple[int, int]]) -> None:
        """Ask these servers from now on (queries in flight keep theirs)."""
        self.settings = dataclasses.replace(self.settings, servers=tuple(servers))

    def resolve(self, name: str, now: float) -> Lookup:
        lookup = Lookup(name)
        if not name:
            return _finish(lookup, error=EMPTY_NAME)
        address = numeric_address(name)
        if address is not None:
            return _finish(lookup, [address])
        # lwIP: strlen(hostname) >= DNS_MAX_NAME_LENGTH (256) is ERR_ARG, before any other check
        if len(name.encode("utf-8", "surrogatepass")) >= 256:
            return _finish(lookup, error=NAME_TOO_LONG)
        try:
            key = name_key(name)
        except DomainNameError as error:
            return _finish(
                lookup, error=NAME_TOO_LONG if error.reason == "name too long" else BAD_NAME
            )
        if not key:
            return _finish(lookup, error=EMPTY_NAME)
        if key in self._hosts:
            return _finish(lookup, [self._hosts[key]])
        if self._from_cache(lookup, key, now):
            return lookup
        running = self._by_name.get(key)
        if running is not None:
            return running.lookup
        if not self._servers:
            return _finish(lookup, error=NO_SERVER)
        if len(self._queries) >= self.settings.max_in_flight:
            self.statistics.count("dns.too_many_lookups")
            return _finish(lookup, error=TOO_MANY_LOOKUPS)
        self._start(_Query(lookup, key, key, 0, now))
        return lookup

    def cancel(self, lookup: Lookup) -> None:
        """Forget the query behind ``lookup`` (a late answer is then counted and ignored)."""
        query = self._by_name.get(name_key(lookup.name)) if not lookup.done else None
        if query is not None and query.lookup is lookup:
            self._end(query)

    def in_flight(self) -> int:
        return len(self._queries)

    # --- the network side --------------------------------------------------------------------

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, tuple[int, int], int]]:
        out = []
        for query in self._queries.values():
            if not query.due:
                continue
            query.due = False
            query.tries += 1
            # dns_check_entry: the timer restarts at max(1, retries) ticks: waits 1, 1, 2, 3.
            query.deadline = now + self.settings.timeout * max(1, query.tries - 1)
            payload = DNSMessage.query(query.id, query.qname).build()
            out.append((payload, self._servers[query.server], query.source_port))
            self.statistics.count("dns.queries_sent")
        return out

    def run_timers(self, now: float) -> None:
        for query in list(self._queries.values()):
            if query.due or query.deadline > now:
                continue
            if query.tries < self.settings.tries:
                query.due = True
                self.statistics.count("dns.retransmissions")
            elif not self._next_server(query):
                self._fail(query, TIMEOUT)

    def next_deadline(self) -> float | None:
        return min((query.deadline for query in self._queries.values()), default=None)

    def process_response(
        self, payload: bytes, server: tuple[int, int], source_port: int, now: float
    ) -> Lookup | None:
        """Take one datagram that arrived on ``source_port``; return the lookup it finished."""
        query = self._queries.get(source_port)
        if query is None:
            self.statistics.count("dns.unexpected_port")
            return None
        if tuple(server) != self._servers[query.server]:
            self.statistics.count("dns.wrong_server")
            return None
        try:
            message = DNSMessage.parse(payload)
        except MalformedPacket as error:
            self.statistics.drop_malformed(error.reason)
            if payload[:2] != query.id.to_bytes(2, "big"):
                return None
            return self._fail(query, MALFORMED)
        if message.id != query.id:
            self.statistics.count("dns.wrong_id")
            return None
        if not message.qr or message.opcode or not self._echoes(query, message):
            self.statistics.count("dns.wrong_question")
            return None
        if message.tc:
            return self._fail(query, TRUNCATED)
        if message.rcode == RCODE_NXDOMAIN:
            self._cache_negative(query.key, message, now)
            return self._fail(query, NOT_FOUND)
        if message.rcode != RCODE_NOERROR:
            self.statistics.count("dns.error_rcode")
            if self._next_server(query):
                return None
            return self._fail(query, REFUSED if message.rcode == RCODE_REFUSED else SERVER_FAILURE)
        return self._process_answer(query, message, now)

    # --- inside --------------------------------------------------------------------------------

    def _start(self, query: _Query) -> None:
        low, high = self.settings.source_ports
        port = self._rng.randint(low, high)
        while port in self._queries:  # max_in_flight <= the range size: this ends
            port = self._rng.randint(low, high)
        query.id = self._rng.getrandbits(16)
        query.source_port = port
        self._queries[port] = query
        self._by_name[query.key] = query

    def _end(self, query: _Query) -> None:
        del self._queries[query.source_port]
        if self._by_name.get(query.key) is query:
            del self._by_name[query.key]

    def _fail(self, query: _Query, reason: str) -> Lookup:
        self._end(query)
        self.statistics.count("dns.lookups_failed")
        return _finish(query.lookup, error=reason)

    def _next_server(self, query: _Query) -> bool:
        if query.server + 1 >= len(self._servers):
            return False
        query.server += 1
        query.tries = 0
        query.due = True
        return True

    def _echoes(self, query: _Query, message: DNSMessage) -> bool:
        if not message.questions:  # some servers drop the question from FORMERR and the like
            return message.rcode != RCODE_NOERROR
        if len(message.questions) != 1:
            return False
        question = message.questions[0]
        return (
            question.name.lower() == query.qname
            and question.qtype == TYPE_A
            and question.qclass == CLASS_IN
        )

    def _process_answer(self, query: _Query, message: DNSMessage, now: float) -> Lookup | None:
        chain = _follow_chain(message.answers, query.qname, query.hops, self.settings.max_cname)
        if chain.hops > self.settings.max_cname:
            self.statistics.count("dns.cname_limit")
            return self._fail(query, NOT_FOUND)
        if chain.addresses:
            return self._succeed(query, chain.addresses, chain.name, chain.ttl, now)
        if chain.name == query.qname:  # NODATA (RFC 2308 2.2)
            self._cache_negative(query.key, message, now)
            return self._fail(query, NOT_FOUND)
        # The answer ends in an alias whose address it does not give: ask for the target.
        self._end(query)
        self.statistics.count("dns.cname_requery")
        self._start(_Query(query.lookup, query.key, chain.name, chain.hops, now))
        return None

    def _succeed(
        self, query: _Query, addresses: list[int], canonical: str, ttl: int, now: float
    ) -> Lookup:
        self._end(query)
        self.statistics.count("dns.lookups_resolved")
        lookup = _finish(query.lookup, addresses)
        lookup.canonical_name = canonical
        bounded = min(max(float(ttl), self.settings.min_ttl), self.settings.max_ttl)
        self._remember(query.key, _CacheEntry(tuple(addresses), canonical, now + bounded), bounded)
        return lookup

    def _cache_negative(self, key: str, message: DNSMessage, now: float) -> None:
        for record in message.authorities:
            if record.rtype == TYPE_SOA and isinstance(record.data, SOAData):
                ttl = min(_ttl(record.ttl), record.data.minimum, self.settings.negative_ttl)
                self._remember(key, _CacheEntry((), key, now + ttl), ttl)
                return
        # RFC 2308 5: a negative answer without SOA is not cached.

    def _remember(self, key: str, entry: _CacheEntry, ttl: float) -> None:
        if ttl <= 0 or not self.settings.cache_size:
            return
        self._cache[key] = entry
        self._cache.move_to_end(key)
        while len(self._cache) > self.settings.cache_size:
            self._cache.popitem(last=False)
            self.statistics.count("dns.cache_evictions")

    def _from_cache(self, lookup: Lookup, key: str, now: float) -> bool:
        entry = self._cache.get(key)
        if entry is None:
            return False
        if entry.expires <= now:
            del self._cache[key]
            return False
        self._cache.move_to_end(key)
        self.statistics.count("dns.cache_hits")
        if not entry.addresses:
            _finish(lookup, error=NOT_FOUND)
        else:
            _finish(lookup, list(entry.addresses)).canonical_name = entry.canonical_name
        return True


class _Chain(NamedTuple):
    addresses: list[int]
    name: str  # where the walk stopped
    hops: int  # aliases followed, the earlier queries' included
    ttl: int  # the smallest along the way


def _follow_chain(answers: tuple[DNSRecord, ...], name: str, hops: int, max_hops: int) -> _Chain:
    """Walk the answer section from ``name`` through CNAMEs to A records (owners compared
    case-insensitively; records of other names or classes are ignored)."""
    addresses: dict[str, list[tuple[int, int]]] = {}
    aliases: dict[str, tuple[str, int]] = {}
    for record in answers:
        owner, data = record.name.lower(), record.data
        if record.rclass != CLASS_IN:
            continue
        if record.rtype == TYPE_A and isinstance(data, int):
            addresses.setdefault(owner, []).append((data, _ttl(record.ttl)))
        elif record.rtype == TYPE_CNAME and isinstance(data, str):
            aliases.setdefault(owner, (data.lower(), _ttl(record.ttl)))
    ttl = MAX_TTL_FIELD
    while name not in addresses and name in aliases and hops <= max_hops:
        target, alias_ttl = aliases[name]
        name, ttl, hops = target, min(ttl, alias_ttl), hops + 1
    found = addresses.get(name, [])
    ttl = min(ttl, *(record_ttl for _, record_ttl in found)) if found else ttl
    return _Chain([address for address, _ in found], name, hops, ttl)


def _ttl(value: int) -> int:
    return 0 if value > MAX_TTL_FIELD else value  # RFC 2181 8


def _finish(lookup: Lookup, addresses: list[int] | None = None, error: str = "") -> Lookup:
    lookup.done = True
    if error:
        lookup.error = ResolverError(error, lookup.name)
    else:
        lookup.addresses = addresses or []
    return lookup
