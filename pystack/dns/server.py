"""A small authoritative DNS server core, sans-IO: query bytes in, response bytes (or None) out.

The zone is a name -> address(es) table plus aliases (name -> CNAME target), all matched
case-insensitively. ``answer(query)``:

- A (or ANY) for a known name: its A records, AA set; an alias: the CNAME chain (bounded), then
  the target's A records. A target outside the table ends the answer at the CNAME (as a server
  authoritative only for the alias's zone does), so the resolver asks for the target.
- an unknown name: NXDOMAIN; a known name and another type: NOERROR with no answer (NODATA).
  Both carry an SOA for ``origin`` with MINIMUM ``negative_ttl`` (RFC 2308 3) unless it is None.
- a message with a parsable header but broken body, or more or fewer than one question: FORMERR
  (no question echoed); another opcode: NOTIMP; a class other than IN or ANY: REFUSED.
- no answer at all to fewer than 12 bytes or to a response (QR set: never answer answers).
- over UDP a response never exceeds 512 bytes (RFC 1035 4.2.1): records are dropped from the end
  and TC is set.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pystack.counters import DECLARED
from pystack.stats import Statistics
from pystack.wire.dns import (
    CLASS_ANY,
    CLASS_IN,
    OPCODE_QUERY,
    RCODE_FORMERR,
    RCODE_NOERROR,
    RCODE_NOTIMP,
    RCODE_NXDOMAIN,
    RCODE_REFUSED,
    TYPE_A,
    TYPE_ANY,
    TYPE_CNAME,
    TYPE_SOA,
    UDP_PAYLOAD_LIMIT,
    DNSMessage,
    DNSQuestion,
    DNSRecord,
    SOAData,
    labels_to_text,
    name_key,
    name_to_labels,
)
from pystack.wire.errors import MalformedPacket

MAX_CHAIN = 8
MAX_RECORDS = 64  # more never fit in 512 bytes: bound the work before truncating


class DNSServer:
    def __init__(
        self,
        addresses: Mapping[str, int | Iterable[int]],
        aliases: Mapping[str, str] | None = None,
        *,
        ttl: int = 300,
        negative_ttl: int | None = 60,
        origin: str = "",
        statistics: Statistics | None = None,
    ) -> None:
        self.ttl = ttl
        self.statistics = statistics if statistics is not None else Statistics(DECLARED)
        self._addresses = {
            name_key(name): (value,) if isinstance(value, int) else tuple(value)
            for name, value in addresses.items()
        }
        self._aliases = {
            name_key(name): labels_to_text(name_to_labels(target))
            for name, target in (aliases or {}).items()
        }
        self._soa: DNSRecord | None = None
        if negative_ttl is not None:
            suffix = f".{origin}" if origin else ""
            data = SOAData(f"ns{suffix}", f"hostmaster{suffix}", 1, 3600, 600, 86400, negative_ttl)
            self._soa = DNSRecord(origin, TYPE_SOA, CLASS_IN, negative_ttl, data)

    def answer(self, query: bytes) -> bytes | None:
        self.statistics.count("dns.server.queries")
        try:
            message = DNSMessage.parse(query)
        except MalformedPacket as error:
            self.statistics.drop_malformed(error.reason)
            try:
                header = DNSMessage.parse_header(query)
            except MalformedPacket:
                return None
            return None if header.qr else self._error(header, RCODE_FORMERR)
        if message.qr:
            self.statistics.count("dns.server.responses_ignored")
            return None
        if len(message.questions) != 1:
            return self._error(message._replace(questions=()), RCODE_FORMERR)
        if message.opcode != OPCODE_QUERY:
            return self._error(message, RCODE_NOTIMP)
        question = message.questions[0]
        if question.qclass not in (CLASS_IN, CLASS_ANY):
            return self._error(message, RCODE_REFUSED)
        records, rcode = self._lookup(question)
        authorities = () if records or self._soa is None else (self._soa,)
        if rcode == RCODE_NXDOMAIN:
            self.statistics.count("dns.server.nxdomain")
        response = DNSMessage.answer_for(
            message, records, rcode, authoritative=True, authorities=authorities
        )
        return self._fit(response)

    def _lookup(self, question: DNSQuestion) -> tuple[list[DNSRecord], int]:
        owner, key = question.name, question.name.lower()
        records: list[DNSRecord] = []
        for _ in range(MAX_CHAIN):
            target = self._aliases.get(key)
            if target is None:
                break
            records.append(DNSRecord(owner, TYPE_CNAME, CLASS_IN, self.ttl, target))
            if question.qtype == TYPE_CNAME:
                return records, RCODE_NOERROR
            owner, key = target, target.lower()
        addresses = self._addresses.get(key)
        if addresses is None:
            # An alias whose target lies outside this table: the CNAME alone.
            return records, RCODE_NOERROR if records else RCODE_NXDOMAIN
        if question.qtype in (TYPE_A, TYPE_ANY):
            records += (
                DNSRecord(owner, TYPE_A, CLASS_IN, self.ttl, address)
                for address in addresses[:MAX_RECORDS]
            )
        return records, RCODE_NOERROR

    def _error(self, query: DNSMessage, rcode: int) -> bytes:
        self.statistics.count(f"dns.server.rcode_{rcode}")
        return self._fit(DNSMessage.answer_for(query, (), rcode))

    def _fit(self, response: DNSMessage) -> bytes:
        """The response in at most 512 bytes: drop records from the end and set TC if needed."""
        payload = response.build()
        while len(payload) > UDP_PAYLOAD_LIMIT:
            if response.authorities:
                response = response._replace(authorities=response.authorities[:-1], tc=True)
            elif response.answers:
                response = response._replace(answers=response.answers[:-1], tc=True)
            else:
                response = response._replace(questions=(), tc=True)
            payload = response.build()
        if response.tc:
            self.statistics.count("dns.server.truncated")
        return payload
