"""The sans-I/O continuity core on a fake clock: every ``now`` is a number the test picks.

Rollover, backoff, stall detection, keepalive and expiry, with no socket, no event loop and
no sleep. The supervisor that pumps the core over real sockets is tested in
``tests/test_continuity.py``.
"""

from __future__ import annotations

import random
from itertools import pairwise

import pytest

from sessions import events as ev
from sessions.continuity import (
    Abort,
    Activate,
    Close,
    Continuity,
    ContinuityAction,
    ContinuityOptions,
    ContinuityState,
    Fail,
    Open,
    Ping,
    Replay,
)
from sessions.errors import ErrorKind, InvalidState, UpstreamError
from sessions.turns import Boundary

S = ContinuityState
HOUR = 3600.0
STRICT, LOOSE, NONE = Boundary.STRICT, Boundary.LOOSE, Boundary.NONE


def core(
    *,
    ping_interval: float | None = None,
    ping_timeout: float | None = None,
    seed: int = 7,
    **options: float | None,
) -> Continuity:
    return Continuity(
        ContinuityOptions(**options),  # type: ignore[arg-type]
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        rng=random.Random(seed),
    )


def live(c: Continuity, *, at: float = 0.0, expires_in: float | None = HOUR) -> int:
    """Start ``c`` and open its first socket at ``at``; returns the socket."""
    [open_] = c.start(at)
    assert open_ == Open(1, "start")
    assert c.opened(1, at, expires_in=expires_in) == (Activate(1, "start"),)
    assert c.state is S.LIVE and c.live == 1
    return 1


def error(code: str, kind: ErrorKind = ErrorKind.RETRYABLE) -> ev.ErrorReceived:
    return ev.ErrorReceived(error=UpstreamError("x", code=code, kind=kind))


def ticks_until(
    c: Continuity, end: float, boundary: Boundary = NONE
) -> list[tuple[float, ContinuityAction]]:
    """Tick at every deadline up to ``end``, as a pump would, answering pings 10 ms later;
    (time, action) for each action."""
    seen: list[tuple[float, ContinuityAction]] = []
    while (deadline := c.next_deadline) is not None and deadline <= end:
        actions = c.tick(deadline, boundary=boundary)
        assert actions or (c.next_deadline or end + 1) > deadline, "a deadline nobody consumes"
        for action in actions:
            seen.append((deadline, action))
            if isinstance(action, Ping):
                c.pong(action.socket, deadline + 0.01)
    return seen


# ---------------------------------------------------------------- the first socket


def test_the_first_socket_is_activated_without_a_replay() -> None:
    c = core()
    live(c)
    assert c.next_deadline is not None  # the rollover window of an hour-long session


def test_a_first_socket_that_fails_to_open_leaves_the_core_ready_to_start_again() -> None:
    c = core()
    [open_] = c.start(0.0)
    assert isinstance(open_, Open)
    assert c.open_failed(open_.socket, 0.1, reason="HTTP 503", fatal=False) == ()
    assert c.state is S.IDLE and c.next_deadline is None
    assert c.start(0.2) == (Open(2, "start"),)
    with pytest.raises(InvalidState):
        c.start(0.3)


# ---------------------------------------------------------------- rollover


def test_rollover_starts_300_s_before_an_hours_expiry_at_a_strict_boundary() -> None:
    c = core()
    live(c, at=10.0)
    assert c.next_deadline == 10.0 + HOUR - 300
    assert c.tick(10.0 + HOUR - 300.1, boundary=STRICT) == ()  # not yet
    assert c.tick(10.0 + HOUR - 300, boundary=STRICT) == (Open(2, "rollover"),)
    assert c.state is S.ROLLING and c.live == 1 and c.standby == 2
    assert c.opened(2, HOUR - 289.0, expires_in=HOUR) == (Replay(2),)
    assert c.replayed(2, HOUR - 288.5, boundary=STRICT) == (
        Activate(2, "rollover", pytest.approx(1.5)),
        Close(1, 1000, "rollover"),
    )
    assert c.state is S.LIVE and c.live == 2 and c.stats.rollovers == 1
    # The new socket's own window, from when it opened.
    assert c.next_deadline == pytest.approx(HOUR - 289.0 + HOUR - 300)


def test_the_rollover_waits_for_a_boundary_and_takes_a_loose_one_late() -> None:
    c = core(max_session_s=100.0)  # margin 15 s: look from 85 s, loose from 95 s
    live(c, expires_in=None)
    assert c.next_deadline == 85.0
    assert c.tick(85.0, boundary=NONE) == ()  # the caller is speaking
    assert c.next_deadline == pytest.approx(85.05)  # looked for again every 50 ms
    assert c.tick(90.0, boundary=LOOSE) == ()  # a reply still playing: not yet
    assert c.tick(95.0, boundary=LOOSE) == (Open(2, "rollover"),)


def test_a_rollover_whose_boundary_passed_during_the_replay_is_postponed() -> None:
    c = core(max_session_s=100.0)
    live(c, expires_in=None)
    c.tick(85.0, boundary=STRICT)
    c.opened(2, 85.1, expires_in=None)
    assert c.replayed(2, 85.2, boundary=NONE) == (Close(2, 1000, "rollover postponed"),)
    assert c.state is S.LIVE and c.live == 1 and c.stats.rollovers == 0
    assert c.next_deadline == pytest.approx(85.25)
    assert c.tick(85.25, boundary=STRICT) == (Open(3, "rollover"),)


def test_a_failed_rollover_attempt_is_retried_a_second_later() -> None:
    c = core(max_session_s=100.0)
    live(c, expires_in=None)
    c.tick(85.0, boundary=STRICT)
    assert c.open_failed(2, 85.3, reason="HTTP 503", fatal=True) == ()  # fatal or not: retry
    assert c.state is S.LIVE and c.stats.failed_attempts == 1
    assert c.next_deadline == pytest.approx(86.3)


def test_a_replay_not_confirmed_in_time_fails_the_rollover_attempt() -> None:
    c = core(max_session_s=100.0, replay_timeout_s=10.0)
    live(c, expires_in=None)
    c.tick(85.0, boundary=STRICT)
    c.opened(2, 85.5, expires_in=None)
    assert c.next_deadline == 95.5
    assert c.tick(95.5, boundary=STRICT) == (
        Close(2, 1000, "the replay was not confirmed within 10 s", failed=True),
    )
    assert c.state is S.LIVE and c.stats.failed_attempts == 1


@pytest.mark.parametrize(
    ("lifetime", "start", "loosen"),
    [
        (HOUR, HOUR - 300, HOUR - 100),  # at most rollover_margin_s
        (1800.0, 1800 - 270, 1800 - 90),  # Azure: 15 % of 30 min
        (10.0, 8.0, 10 - 2 / 3),  # at least 2 s
        (2.0, 1.0, 2 - 1 / 3),  # half the lifetime when less than 1 s would be left
    ],
)
def test_the_rollover_margin_scales_with_the_lifetime(
    lifetime: float, start: float, loosen: float
) -> None:
    c = core()
    live(c, expires_in=lifetime)
    assert c.next_deadline == pytest.approx(start)
    [(at, action)] = ticks_until(c, lifetime, boundary=LOOSE)  # a reply keeps playing
    assert action == Open(2, "rollover")
    assert loosen <= at < loosen + 0.05


def test_max_session_s_caps_what_the_server_allows() -> None:
    c = core(max_session_s=600.0)
    live(c, at=5.0, expires_in=HOUR)
    assert c.next_deadline == pytest.approx(5.0 + 600 - 90)


def test_a_socket_without_expiry_never_rolls_over() -> None:
    c = core()
    live(c, expires_in=None)
    assert c.next_deadline is None


# ---------------------------------------------------------------- loss and recovery


def lose(c: Continuity, at: float, code: int = 1011, reason: str = "", cut: bool = False) -> None:
    actions = c.lost(c.live or 0, at, code=code, reason=reason, reply_cut=cut)
    assert actions[0] == Close(1, 1006, "lost") and isinstance(actions[-1], Open)
    assert c.state is S.RECONNECTING


def test_a_drop_is_reconnected_at_once_replayed_and_activated() -> None:
    c = core()
    live(c)
    lose(c, 50.0, cut=True)
    assert c.loss_reason == "dropped" and c.standby == 2
    assert c.opened(2, 50.01, expires_in=HOUR) == (Replay(2),)
    assert c.replayed(2, 50.02, boundary=NONE) == (
        Activate(2, "dropped", pytest.approx(0.02), reply_cut=True),
    )
    assert c.stats.reconnects == {"dropped": 1}
    assert c.stats.reconnect_ms == [pytest.approx(20.0)]


@pytest.mark.parametrize(
    ("event", "code", "reason", "expected"),
    [
        (error("session_expired"), 1001, "", "expired"),
        (None, 1001, "Your session hit the maximum duration", "expired"),
        (None, 1011, "keepalive ping timeout", "stalled"),
        (None, 1006, "", "dropped"),
        (None, 1011, "simulated drop", "dropped"),
    ],
)
def test_losses_are_told_apart(
    event: ev.ServerEvent | None, code: int, reason: str, expected: str
) -> None:
    c = core()
    live(c)
    if event is not None:
        c.receive(event, 30.0, reply_expected=False)
    lose(c, 30.5, code=code, reason=reason)
    assert c.loss_reason == expected


def test_backoff_is_exponential_with_full_jitter_from_the_injected_rng() -> None:
    c = core(reconnect_base_s=0.1, reconnect_max_s=0.5, max_outage_s=1000.0, seed=42)
    live(c)
    lose(c, 10.0)
    replica = random.Random(42)
    now = 10.0
    for delay in (0.1, 0.2, 0.4, 0.5, 0.5):
        assert c.open_failed(c.standby or 0, now, reason="refused", fatal=False) == ()
        assert c.state is S.BACKING_OFF
        retry = now + replica.uniform(0, delay)
        assert c.next_deadline == pytest.approx(retry)
        assert c.tick(retry - 1e-9) == ()
        [again] = c.tick(retry)
        assert isinstance(again, Open) and again.purpose == "recover"
        now = retry
    assert c.stats.failed_attempts == 5


def test_recovery_attempts_connect_briefly_at_first_then_longer() -> None:
    # During an outage a connect waits on SYN retransmissions: short attempts keep fresh
    # SYNs going, so a path that comes back is reached within about a second.
    c = core(recover_connect_s=2.0, reconnect_base_s=0.1, max_outage_s=1000.0)
    live(c)
    [*_, first] = c.lost(1, 10.0, code=1006, reason="", reply_cut=False)
    assert isinstance(first, Open) and first.connect_timeout == 2.0
    timeouts = []
    now = 10.0
    for _ in range(3):
        now += 2.0
        c.open_failed(c.standby or 0, now, reason="timed out", fatal=False)
        [again] = c.tick(c.next_deadline or now)
        assert isinstance(again, Open)
        timeouts.append(again.connect_timeout)
    assert timeouts == [3.0, 4.5, 6.75]
    assert c.opened(c.standby or 0, now + 1, expires_in=HOUR) == (Replay(c.standby or 0),)
    c.replayed(c.standby or 0, now + 1.1, boundary=NONE)
    [*_, fresh] = c.lost(c.live or 0, now + 50, code=1006, reason="", reply_cut=False)
    assert isinstance(fresh, Open) and fresh.connect_timeout == 2.0  # a new outage: brief
    [start] = core().start(0.0)
    assert isinstance(start, Open) and start.connect_timeout is None  # the pump's own


def test_an_outage_beyond_the_limit_fails_the_conversation() -> None:
    c = core(max_outage_s=30.0, reconnect_base_s=5.0, reconnect_max_s=5.0)
    live(c)
    lose(c, 100.0)
    now = 100.0
    while True:
        actions = c.open_failed(c.standby or 0, now + 2.0, reason="refused", fatal=False)
        if actions:
            break
        now = c.next_deadline or 0.0
        c.tick(now)
    assert actions == (Fail("the Realtime API was unreachable for over 30 s", fatal=False),)
    assert now + 2.0 - 100.0 > 30.0 and c.state is S.FAILED


def test_a_fatal_refusal_of_a_new_socket_fails_at_once() -> None:
    c = core()
    live(c)
    lose(c, 5.0)
    reason = "127.0.0.1: the API key was rejected (HTTP 401 Unauthorized)"
    assert c.open_failed(2, 5.1, reason=reason, fatal=True) == (Fail(reason, fatal=True),)
    assert c.stats.failed_attempts == 0


def test_a_fatal_error_on_the_socket_ends_the_conversation_when_it_closes() -> None:
    c = core()
    live(c)
    c.receive(error("invalid_api_key", ErrorKind.FATAL), 3.0, reply_expected=False)
    actions = c.lost(1, 3.1, code=1008, reason="invalid_api_key", reply_cut=False)
    assert actions == (Close(1, 1006, "lost"), Fail("invalid_api_key: x", fatal=True))
    assert c.next_deadline is None


def test_a_recovery_replay_not_confirmed_in_time_is_a_failed_attempt() -> None:
    c = core(replay_timeout_s=10.0)
    live(c)
    lose(c, 1.0)
    c.opened(2, 1.5, expires_in=HOUR)
    [closed] = c.tick(11.5)
    assert closed == Close(2, 1000, "the replay was not confirmed within 10 s", failed=True)
    assert c.state is S.BACKING_OFF


def test_a_successor_lost_during_its_replay_is_a_failed_attempt() -> None:
    c = core()
    live(c)
    lose(c, 1.0)
    c.opened(2, 1.5, expires_in=HOUR)
    assert c.lost(2, 1.6, code=1011, reason="", reply_cut=False) == (
        Close(2, 1006, "connection closed (1011)", failed=True),
    )
    assert c.state is S.BACKING_OFF and c.stats.failed_attempts == 1


def test_losing_the_live_socket_mid_rollover_abandons_the_successor() -> None:
    c = core(max_session_s=100.0)
    live(c, expires_in=None)
    c.tick(85.0, boundary=STRICT)
    c.opened(2, 85.1, expires_in=None)
    assert c.lost(1, 85.2, code=1001, reason="", reply_cut=False) == (
        Close(1, 1006, "lost"),
        Close(2, 1000, "rollover abandoned"),
        Open(3, "recover"),
    )
    assert c.replayed(2, 85.3, boundary=STRICT) == ()  # too late for it
    assert c.loss_reason == "expired"


def test_late_reports_of_sockets_no_longer_wanted_are_closed_or_ignored() -> None:
    c = core()
    live(c)
    assert c.opened(9, 1.0, expires_in=None) == (Close(9, 1000, "not needed"),)
    assert c.lost(9, 1.0, code=1000, reason="", reply_cut=False) == ()
    c.close()
    assert c.lost(1, 2.0, code=1006, reason="", reply_cut=False) == ()
    assert c.tick(HOUR) == () and c.next_deadline is None


# ---------------------------------------------------------------- stall and keepalive


def test_a_server_silent_while_a_reply_is_expected_is_aborted_as_stalled() -> None:
    c = core(stall_timeout_s=8.0)
    live(c, expires_in=None)
    assert c.receive(ev.InputCleared(), 1.0, reply_expected=True)  # the deadline came earlier
    assert c.next_deadline == 9.0
    assert not c.receive(ev.InputCleared(), 4.0, reply_expected=True)  # heard: later
    assert c.tick(9.0) == ()  # found out when it fires
    assert c.next_deadline == 12.0
    [abort] = c.tick(12.0)
    assert isinstance(abort, Abort) and abort.socket == 1 and "silent for 8.0 s" in abort.why
    assert c.next_deadline is None  # nothing more until the reader reports the loss
    lose(c, 12.01, code=1006)
    assert c.loss_reason == "stalled"


def test_a_quiet_socket_is_not_stalled_when_no_reply_is_expected() -> None:
    c = core(stall_timeout_s=8.0)
    live(c, expires_in=None)
    c.receive(ev.InputCleared(), 1.0, reply_expected=False)
    assert c.next_deadline is None
    assert c.tick(1000.0) == ()


def test_a_reply_asked_for_after_a_long_quiet_is_not_late_yet() -> None:
    c = core(stall_timeout_s=8.0)
    live(c, expires_in=None)
    c.receive(ev.InputCleared(), 1.0, reply_expected=False)
    assert c.expecting(60.0, True)  # a typed message, a minute of silence later
    assert c.tick(60.0) == ()
    assert c.next_deadline == 68.0
    c.expecting(61.0, False)  # answered (nothing heard yet, but nothing owed either)
    assert c.next_deadline is None


def test_keepalive_pings_every_interval_and_aborts_when_a_pong_is_late() -> None:
    c = core(ping_interval=10.0, ping_timeout=5.0)
    live(c, expires_in=None)
    assert c.next_deadline == 10.0
    assert c.tick(10.0) == (Ping(1),)
    assert c.next_deadline == 15.0  # the pong is due
    c.pong(1, 10.02)
    assert c.next_deadline == 20.0
    assert c.tick(20.0) == (Ping(1),)
    [abort] = c.tick(25.0)
    assert abort == Abort(1, "no pong within 5 s")
    lose(c, 25.01, code=1006)
    assert c.loss_reason == "stalled"


def test_a_pong_missed_only_because_the_pump_was_held_up_does_not_abort() -> None:
    """A starved process: the tick for the pong's deadline (15) comes at 21, the pong read
    just after it. The socket is judged again after the grace, and it answered."""
    c = core(ping_interval=10.0, ping_timeout=5.0, pump_late_s=1.0, pump_grace_s=0.5)
    live(c, expires_in=None)
    assert c.tick(10.0) == (Ping(1),)
    assert c.tick(21.0) == ()  # 6 s late: the pump's own stall, not the server's
    assert c.next_deadline == 21.5
    c.pong(1, 21.01)  # the reader's turn: the pong was waiting in the socket
    assert c.next_deadline == 20.0  # the next ping, at once
    assert c.tick(21.5) == (Ping(1),)


def test_a_socket_still_silent_after_the_grace_is_aborted() -> None:
    c = core(ping_interval=10.0, ping_timeout=5.0, stall_timeout_s=8.0)
    live(c, expires_in=None)
    assert c.tick(10.0) == (Ping(1),)
    assert c.tick(21.0) == ()  # late tick: held off once
    [abort] = c.tick(21.5)
    assert abort == Abort(1, "no pong within 5 s")
    # The same for a reply owed: a late tick holds off once, then the silence counts.
    c = core(stall_timeout_s=8.0)
    live(c, expires_in=None)
    c.receive(ev.InputCleared(), 1.0, reply_expected=True)
    assert c.tick(9.5) != ()  # 0.5 s late is on time: aborted
    c = core(stall_timeout_s=8.0)
    live(c, expires_in=None)
    c.receive(ev.InputCleared(), 1.0, reply_expected=True)
    assert c.tick(12.0) == ()
    c.receive(ev.InputCleared(), 12.01, reply_expected=True)  # the reply had come meanwhile
    assert c.next_deadline == pytest.approx(20.01)
    assert c.tick(12.5) == ()


def test_pings_go_to_the_live_socket_only_and_stop_with_it() -> None:
    c = core(ping_interval=10.0, ping_timeout=10.0, max_session_s=100.0)
    live(c, expires_in=None)
    seen = ticks_until(c, 84.0)
    assert [t for t, a in seen] == [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0]
    assert all(a == Ping(1) for _, a in seen)
    assert [a for _, a in ticks_until(c, 89.0, boundary=STRICT)] == [Open(2, "rollover")]
    # The old socket is kept alive while its successor is prepared.
    assert [a for _, a in ticks_until(c, 90.0, boundary=STRICT)] == [Ping(1)]
    c.opened(2, 90.1, expires_in=None)
    c.replayed(2, 90.2, boundary=STRICT)
    assert c.next_deadline == pytest.approx(100.2)  # the new socket's first ping
    assert c.tick(100.2) == (Ping(2),)
    c.pong(1, 100.3)  # from the retired socket: ignored
    assert c.next_deadline == pytest.approx(110.2)


# ---------------------------------------------------------------- a whole conversation


def test_a_conversation_over_three_hours_of_one_hour_sessions() -> None:
    """Rollovers, a drop and a stall on the fake clock: every deadline is consumed."""
    c = core(ping_interval=10.0, ping_timeout=10.0)
    live(c)
    log: list[tuple[float, ContinuityAction]] = []

    def pump(until: float, boundary: Boundary = STRICT) -> None:
        while (deadline := c.next_deadline) is not None and deadline <= until:
            for action in c.tick(deadline, boundary=boundary):
                log.append((deadline, action))
                if isinstance(action, Ping):
                    c.pong(action.socket, deadline + 0.01)
                elif isinstance(action, Open):
                    c.opened(action.socket, deadline + 0.1, expires_in=HOUR)
                    for replay in c.replayed(action.socket, deadline + 0.2, boundary=boundary):
                        log.append((deadline + 0.2, replay))

    pump(4000.0)
    assert c.stats.rollovers == 1 and c.live == 2
    lose_at = 5000.0
    [_, reopen] = c.lost(2, lose_at, code=1006, reason="", reply_cut=False)
    assert isinstance(reopen, Open)
    c.opened(reopen.socket, lose_at + 0.05, expires_in=HOUR)
    [activate] = c.replayed(reopen.socket, lose_at + 0.06, boundary=NONE)
    assert activate == Activate(reopen.socket, "dropped", pytest.approx(0.06))
    pump(3 * HOUR)
    assert c.stats.rollovers == 2 and c.stats.reconnects == {"dropped": 1}
    for socket in (1, 2, 3, 4):
        pings = [t for t, a in log if a == Ping(socket)]
        assert pings and all(b - a == pytest.approx(10.0) for a, b in pairwise(pings))
