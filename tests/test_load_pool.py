"""The raw senders' connection pool and the open-loop direct send (`RawSender.start_nowait` from the
scheduler thread, `complete` in the event loop), against the real null endpoints; and `deploy_compare.core.realtime`."""
from __future__ import annotations

import os
import threading

import gevent
import pytest

from deploy_compare.core.realtime import realtime
from deploy_compare.loadtests.launch import free_port
from deploy_compare.loadtests.nullgrpc import start_null_grpc_server, torchserve_response
from deploy_compare.loadtests.rawgrpc import RawGrpcSender
from deploy_compare.loadtests.rawhttp import RawHttpSender
from deploy_compare.loadtests.senders import TORCHSERVE_PREDICT
from tests.test_load_grpc import _Environment, grpcio_server  # noqa: F401  (fixture)
from tests.test_load_null import null_server  # noqa: F401  (fixture)


@pytest.fixture
def null_rest(null_server):  # noqa: F811
    _, port, _ = null_server
    return f"http://127.0.0.1:{port}"


def test_pool_is_bounded_and_hands_a_released_connection_to_the_first_waiter(null_rest):
    env = _Environment()
    sender = RawHttpSender(env, null_rest, "/predictions/m", [b"{}"], {}, max_connections=2, timeout=5.0)
    try:
        a, b = sender.acquire(), sender.acquire()
        assert sender.opened == 2 and sender.full
        assert sender.start_nowait() is None  # nothing idle: the scheduler thread leaves it to the loop
        first, second = gevent.spawn(sender.acquire), gevent.spawn(sender.acquire)
        gevent.sleep(0)
        assert len(sender.waiters) == 2
        sender.release(a, reusable=True)
        assert first.get(timeout=1) is a and len(sender.waiters) == 1  # first come, first served
        sender.idle.append(b)  # (as if released while a greenlet waits: the thread must not take it)
        assert sender.start_nowait() is None
        sender.idle.remove(b)
        sender.release(b, reusable=False)  # closed: its place goes to the waiter, which opens a new one
        c = second.get(timeout=5)
        assert c is not b and sender.opened == 2
        for conn in (a, c):
            sender.send(conn=conn)
        assert [e["exception"] for e in env.events.fired] == [None, None] and len(sender.idle) == 2
    finally:
        sender.close()
    assert sender.opened == 0


def test_pool_wait_is_bounded_and_says_what_it_waited_for(null_rest):
    sender = RawHttpSender(_Environment(), null_rest, "/predictions/m", [b"{}"], {}, max_connections=1, timeout=0.2)
    try:
        sender.acquire()
        with pytest.raises(TimeoutError, match=r"no connection to 127\.0\.0\.1:\d+ came free within 0\.2 s"):
            sender.acquire()
        assert not sender.waiters
    finally:
        sender.close()


def _start_from_a_thread(sender):
    out = {}
    worker = threading.Thread(target=lambda: out.setdefault("started", sender.start_nowait()))
    worker.start()
    worker.join(timeout=5)
    return out["started"]


def test_direct_send_from_a_native_thread_then_completed_in_the_loop(null_rest, tmp_path):
    env = _Environment()
    sender = RawHttpSender(env, null_rest, "/predictions/m", [b"{}"], {}, max_connections=4, timeout=5.0)
    try:
        sender.release(sender.acquire(), reusable=True)  # one idle connection
        conn, pending, t0 = _start_from_a_thread(sender)
        assert pending == b"" and not sender.idle  # written whole, by the thread
        sender.complete(conn, pending, t0, {"k": 1})
        (event,) = env.events.fired
        assert event["exception"] is None and event["context"] == {"k": 1} and event["response_time"] > 0
        assert sender.idle == [conn]
    finally:
        sender.close()


def test_direct_send_of_a_large_grpc_message_finishes_under_flow_control(grpcio_server):  # noqa: F811
    port, seen = grpcio_server
    env = _Environment()
    big = b"\x01" * 8_000_000  # beyond the windows grpcio grants: `complete` sends the rest as they open
    sender = RawGrpcSender(env, f"127.0.0.1:{port}", "/t.T/Echo", [big], [("authorization", "Bearer s")],
                           name="echo", timeout=10.0, max_connections=2)
    try:
        sender.release(sender.acquire(), reusable=True)
        held = []
        for _ in range(3):
            conn, pending, t0 = _start_from_a_thread(sender)
            held.append(conn.protocol.stream.rest is not None)
            sender.complete(conn, pending, t0, None)
        assert held[0]  # the fresh connection's 64 KiB window held most of the first message back
        assert [e["exception"] for e in env.events.fired] == [None] * 3 and seen == ["Bearer s"] * 3
    finally:
        sender.close()


def test_direct_send_on_a_connection_the_server_closed_is_a_counted_error(tmp_path):
    port = free_port()
    server = start_null_grpc_server(port, tmp_path / "null-grpc.log")
    env = _Environment()
    sender = RawGrpcSender(env, f"127.0.0.1:{port}", TORCHSERVE_PREDICT, [b"q"], [], name="p", max_connections=1)
    try:
        sender.send()
        assert env.events.fired[0]["response_length"] == len(torchserve_response())
        server.stop(timeout=5)
        conn, pending, t0 = _start_from_a_thread(sender)
        sender.complete(conn, pending, t0, None)
        assert env.events.fired[1]["exception"] is not None  # reset / closed: an error, not a crash
        assert sender.opened == 0 and not sender.idle  # never reused
    finally:
        sender.close()
        server.stop(timeout=5)


def test_realtime_applies_fifo_and_restores_or_says_why_not(monkeypatch):
    before = os.sched_getscheduler(0)
    with realtime(0) as what:
        assert what.startswith("normal (SCHED_OTHER): real-time scheduling not requested")
    with realtime(1) as what:
        if what == "SCHED_FIFO 1":
            assert os.sched_getscheduler(0) == os.SCHED_FIFO
        else:  # an unprivileged user: the reason, and how to allow it
            assert "refused" in what and "ulimit -r 1" in what
    assert os.sched_getscheduler(0) == before

    def refuse(*_):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    with realtime(3) as what:
        assert what == ("normal (SCHED_OTHER): SCHED_FIFO 3 refused (Operation not permitted; it needs "
                        "CAP_SYS_NICE or `ulimit -r 3`)")
