"""The fuzzer finds a planted bug, writes a reproducer, and the reproducer tells the two apart.

The planted bug is a test double receiver that accepts out-of-window data: every segment passes
the sequence check (RFC 9293 3.10.7.4's first check) and its text is taken as the next bytes,
wherever its sequence number points. The campaign must find it (a read returns other bytes
than the peer sent, or RCV.NXT runs past the advertised window), minimize it into a script,
and that script must fail against the broken receiver and pass against the real one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pystack.fuzz.campaign import CampaignSettings, run_campaign
from pystack.fuzz.reproducer import replay
from pystack.script import ScriptFailure, ScriptRunner
from pystack.tcp import input as tcp_input
from pystack.tcp.input import Acceptability, ConnectionInput
from pystack.tcp.seq import seq_add
from pystack.wire.tcp import TCPSegment


def _accept_everything(
    segment: TCPSegment, rcv_nxt: int, rcv_wnd: int, paws_recent: int | None
) -> Acceptability:
    return Acceptability.ACCEPTABLE


def _take_as_next(self: ConnectionInput, seq: int, payload: bytes, now: float) -> None:
    """The broken receiver: whatever arrives is the next data (no trimming, no window)."""
    self.rcv_nxt = seq_add(self.rcv_nxt, len(payload))
    self.receive_buffer.append(payload)
    self.ack_now = True


@pytest.fixture
def broken_receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(tcp_input, "check_sequence", _accept_everything)
    monkeypatch.setattr(ConnectionInput, "_receive_data", _take_as_next)
    yield


def test_the_campaign_finds_the_planted_bug_and_its_reproducer_replays(
    broken_receiver: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = CampaignSettings(seed=7, seconds=120.0, cases=80, out=str(tmp_path))
    result = run_campaign(settings)
    replayable = [saved for saved in result.findings if saved.replays]
    assert replayable, result.summary()  # found, and as a script that replays
    saved = replayable[0]
    assert saved.finding.kind in ("read", "invariant")
    script = Path(saved.script or "")
    assert script.read_text().startswith("# fuzz finding")
    assert Path(saved.pcap or "").stat().st_size > 24  # the pcap header and some packets
    text = script.read_text()
    assert len(saved.lines) < len(saved.finding.lines)  # minimized
    # Replayed against the broken receiver: it fails, with the same finding.
    with pytest.raises(ScriptFailure):
        ScriptRunner(text).run()
    assert replay(saved.lines) is not None
    # Against the real receiver: the same script passes.
    monkeypatch.undo()
    ScriptRunner(text).run()
    assert replay(saved.lines) is None
