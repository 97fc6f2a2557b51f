"""A cheap REST sender: pre-built HTTP/1.1 request bytes over kept-alive sockets (imported only inside a
locust process, where gevent has patched `socket`).

Locust's FastHttpSession builds headers, wraps the response and reads it through several layers on
every request: against the null endpoint that alone is ~0.1 ms per request at 1 user, inside every
figure. Here each request is one `sendall` of bytes serialized before the load starts and a read of
the status line, the headers and a Content-Length (or chunked) body; the clock runs from just before
the send to the last body byte, like wrk's. One socket per in-flight request, kept alive and reused
(closed loop: one per user; open loop: a pool as deep as the requests in flight).

How a request waits for its answer costs latency inside every figure. Measured against TorchServe at
1 user (server on core 0, client on core 1, three ways alternated every 0.5 s for 30 s, medians of
the p50s): a plain blocking socket 0.746 ms; gevent's socket, parked through the hub, 0.778 ms (+4.3%);
gevent's socket with a kernel poll before each read, 0.766 ms (+2.7%: its Python wrapper). So the
connections here are plain sockets, never gevent's, waited on two ways (`Connection`): when a closed-loop
user is the only user of its process (`send_exclusive`) the socket blocks in the kernel and the user
hands the loop back between requests every few ms; otherwise (several users or the open-loop pool
share the loop) it is non-blocking and waits through gevent's `wait_read` / `wait_write`.
"""
from __future__ import annotations

import _socket
import collections
import itertools
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import gevent
import gevent.event
from gevent.socket import wait_read, wait_write

# the interpreter's C socket type, which gevent's monkey-patching of `socket` does not replace (and
# importing gevent.monkey here would put it in every process that imports this module)
_PlainSocket = _socket.socket

_CRLF2 = b"\r\n\r\n"


class HttpStatusError(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:200]!r}")
        self.status_code = status  # error_kind() reads it as http_<code>


def build_requests(host: str, port: int, path: str, bodies: list[bytes], headers: dict[str, str]) -> list[bytes]:
    """Complete request bytes, one per body (headers in the order given, Content-Type first)."""
    fixed = {"Host": f"{host}:{port}", "Content-Type": "application/json", **headers}
    head = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
    return [f"POST {path} HTTP/1.1\r\n{head}Content-Length: {len(b)}\r\n\r\n".encode("latin-1") + b for b in bodies]


class ResponseReader:
    """Reads one HTTP/1.1 response from a socket (anything with `recv(n)`): (status, body, keep_alive)."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("the server closed the connection mid-response")
        self.buf += chunk

    def _line(self) -> bytes:
        while (end := self.buf.find(b"\r\n")) < 0:
            self._more()
        line = bytes(self.buf[:end])
        del self.buf[:end + 2]
        return line

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._more()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read(self) -> tuple[int, bytes, bool]:
        while (end := self.buf.find(_CRLF2)) < 0:
            self._more()
        low = bytes(self.buf[:end]).lower()
        if low.startswith(b"http/1.1 ") and b"\r\ntransfer-encoding:" not in low:
            # the common case in a few C-level calls (this runs inside every measured request)
            at = low.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = low.find(b"\r\n", at + 2)
                length = int(low[at + 17:stop if stop >= 0 else len(low)])
                del self.buf[:end + 4]
                return int(low[9:12]), self.exactly(length), b"\r\nconnection: close" not in low
        head = bytes(self.buf[:end]).split(b"\r\n")
        del self.buf[:end + 4]
        parts = head[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ValueError(f"not an HTTP/1.x response: {head[0][:80]!r}")
        status = int(parts[1])
        fields = {}
        for line in head[1:]:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip().lower()
        keep = fields.get(b"connection") != b"close" and parts[0] == b"HTTP/1.1"
        if fields.get(b"transfer-encoding", b"").endswith(b"chunked"):
            body = bytearray()
            while size := int(self._line().split(b";")[0], 16):
                body += self.exactly(size)
                self.exactly(2)
            while self._line():  # trailers, up to the empty line
                pass
            return status, bytes(body), keep
        if b"content-length" in fields:
            return status, self.exactly(int(fields[b"content-length"])), keep
        # neither: the body ends when the server closes the connection
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return status, bytes(self.buf), False
            self.buf += chunk


class Connection:
    """A plain (not gevent) socket that waits in the kernel when `exclusive`, through gevent otherwise.

    A kernel wait blocks every greenlet of the process, so it is bounded by KERNEL_WAIT_S: an answer
    slower than that (a stalled or slow server) is waited for through the loop, so the controller still
    closes its windows on time. At the next request the connection goes back to kernel waits."""

    KERNEL_WAIT_S = 0.02

    def __init__(self, sock: Any, timeout: float) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.timeout = timeout
        self.exclusive: bool | None = None
        self.set_exclusive(False)
        self.protocol: Any = None  # per-connection protocol state (HTTP/2's, for gRPC)
        self.reader = ResponseReader(self)

    def set_exclusive(self, flag: bool) -> None:
        if flag != self.exclusive:
            self.sock.settimeout(self.KERNEL_WAIT_S if flag else 0.0)  # bounded kernel wait / non-blocking
            self.exclusive = flag

    def recv(self, n: int) -> bytes:
        if self.exclusive:
            try:
                return self.sock.recv(n)
            except TimeoutError:  # a slow answer: let the rest of the process run while it comes
                self.set_exclusive(False)
        while True:
            try:
                return self.sock.recv(n)
            except BlockingIOError:
                wait_read(self.fd, self.timeout)  # raises TimeoutError after `timeout`

    def send_nowait(self, data: bytes) -> int:
        """Write what the socket takes now, without waiting (any thread; a non-exclusive connection):
        the number of bytes written."""
        try:
            return self.sock.send(data)
        except BlockingIOError:
            return 0

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view):]
            except BlockingIOError:
                wait_write(self.fd, self.timeout)
            except TimeoutError:  # exclusive, and not writable within the kernel wait
                self.set_exclusive(False)

    def close(self) -> None:
        self.sock.close()


class RawSender:
    """Pre-built requests over plain kept-alive connections (`Connection`), one request in flight on
    each: closed loop, one per user; open loop, a pool of at most `max_connections` (the requests in
    flight), shared by the event loop and the open-loop scheduler thread. A subclass opens its protocol
    on a new connection (`_open`), starts a request (`_begin`: the bytes to write, no socket touched)
    and ends it (`_end`: the rest of the exchange); this class keeps the pool, the clock and locust's
    `request` event.

    Two ways to send. `send` (a greenlet: closed-loop users, open-loop sends that find no idle
    connection) takes a connection, waiting for one if the pool is full, and does the whole exchange.
    `start_nowait` (any thread: the open-loop scheduler at each scheduled time) writes the request on an
    idle connection at once or does nothing; `complete` (a greenlet) then reads the answer. The pool's
    counts and waiters belong to the event loop; the scheduler thread only pops an idle connection
    (atomic under the GIL) and only when no greenlet is waiting for one (first come, first served)."""

    request_type = ""

    def __init__(self, environment: Any, address: tuple[str, int], name: str, requests: list[bytes],
                 timeout: float, max_connections: int | None = None) -> None:
        self.address = address
        self.requests = itertools.cycle(requests)
        self.events = environment.events
        self.name = name
        self.timeout = timeout
        self.max_connections = max_connections  # None: one per concurrent sender, unbounded
        self.idle: list[Connection] = []
        self.opened = 0  # connections open (idle or carrying a request)
        self.waiters: collections.deque[gevent.event.AsyncResult] = collections.deque()
        self.exclusive = False  # set by send_exclusive

    # --- the protocol
    def _open(self, conn: Connection) -> None:
        """Prepare a new connection for requests (a protocol's handshake); nothing for HTTP/1.1."""

    def _begin(self, conn: Connection, request: bytes) -> bytes:
        """Start `request` on `conn` (protocol state only, no I/O): the bytes to write."""
        return request

    def _end(self, conn: Connection) -> tuple[int, BaseException | None, bool]:
        """The rest of the exchange once `_begin`'s bytes are written: (response bytes, the request's error
        or None, connection reusable)."""
        raise NotImplementedError

    # --- the pool
    def _new_connection(self) -> Connection:
        self.opened += 1
        try:
            # connect through gevent's socket (a slow connect must not stall the other greenlets), then
            # keep the plain socket under it
            made = socket.create_connection(self.address, timeout=self.timeout)
            made.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(_PlainSocket(fileno=made.detach()), self.timeout)
        except BaseException:
            self.opened -= 1
            raise
        try:
            self._open(conn)
        except BaseException:
            self.release(conn, reusable=False)
            raise
        return conn

    @property
    def full(self) -> bool:
        """Every connection the pool may open carries a request (a read any thread may make)."""
        return self.max_connections is not None and self.opened >= self.max_connections and not self.idle

    def acquire(self) -> Connection:
        """An idle connection, else a new one, else (the pool is full) the next one released (a greenlet)."""
        if self.idle:
            return self.idle.pop()
        if self.max_connections is None or self.opened < self.max_connections:
            return self._new_connection()
        waiter = gevent.event.AsyncResult()
        self.waiters.append(waiter)
        try:
            conn = waiter.get(timeout=self.timeout)
        except gevent.Timeout:
            raise TimeoutError(f"no connection to {self.address[0]}:{self.address[1]} came free within "
                               f"{self.timeout:g} s ({self.opened} open, all carrying requests)") from None
        finally:
            if waiter in self.waiters:
                self.waiters.remove(waiter)
        return conn if conn is not None else self._new_connection()  # None: a closed one's place

    def release(self, conn: Connection, reusable: bool) -> None:
        """Give a connection back after its exchange (the event loop): to the first waiter, else idle."""
        if not reusable:
            conn.close()
            self.opened -= 1
        handed: Connection | None = conn if reusable else None
        if self.waiters:
            self.waiters.popleft().set(handed)
        elif handed is not None:
            self.idle.append(handed)

    # --- sending
    def send_exclusive(self, seconds: float) -> None:
        """Send back to back for `seconds` with kernel waits, then yield to the loop once. Only for the
        sole user of its locust process: no other greenlet runs until it yields."""
        end = time.perf_counter() + seconds
        self.exclusive = True
        try:
            while time.perf_counter() < end:
                self.send()
        finally:
            self.exclusive = False
        # a whole turn of the loop: sleep(0) ran the ready greenlets but left due timers (the controller's 10 ms
        # polls) up to ~0.25 s late, so a 1-user window of 0.3 s lasted 0.52 s and its stop 0.26 s (null server)
        gevent.idle()

    def send(self, context: dict | None = None, conn: Connection | None = None) -> None:
        """One request (a greenlet), on `conn` if given (from `acquire`), timed from before the connection
        is taken (or from the call, given one)."""
        t0 = time.perf_counter()
        if conn is None:
            try:
                conn = self.acquire()
            except Exception as err:  # counted by kind in the recorder (transport errors are results)
                self.report(t0, 0, err, context)
                return
        conn.set_exclusive(self.exclusive)
        try:
            pending: bytes | BaseException = self._begin(conn, next(self.requests))
        except Exception as err:
            pending = err
        self.complete(conn, pending, t0, context)

    def start_nowait(self) -> tuple[Connection, bytes | BaseException, float] | None:
        """Write the next request on an idle connection without waiting (any thread): (connection, what
        `complete` must still write or the error that ended the request, its start time), or None when no
        connection is idle or a greenlet waits for one."""
        if self.waiters:
            return None
        try:
            conn = self.idle.pop()
        except IndexError:
            return None
        try:
            data = self._begin(conn, next(self.requests))
            t0 = time.perf_counter()
            return conn, data[conn.send_nowait(data):], t0
        except Exception as err:
            return conn, err, time.perf_counter()

    def complete(self, conn: Connection, pending: bytes | BaseException, t0: float, context: dict | None) -> None:
        """End a request begun on `conn` at `t0` (a greenlet): write `pending`, read the answer, fire the
        request event, give the connection back."""
        length, exc, reusable = 0, None, False
        try:
            if isinstance(pending, BaseException):
                raise pending
            if pending:
                conn.sendall(pending)
            length, exc, reusable = self._end(conn)
        except Exception as err:  # a failed connection is never reused
            exc = err
        t_end = time.perf_counter()
        self.release(conn, reusable)
        self.report(t0, length, exc, context, t_end)

    def report(self, t0: float, length: int, exc: BaseException | None, context: dict | None,
               t_end: float | None = None) -> None:
        """Fire locust's `request` event for a request started at `t0` (ended now, or at `t_end`)."""
        elapsed_ms = ((t_end or time.perf_counter()) - t0) * 1000.0
        self.events.request.fire(request_type=self.request_type, name=self.name, response_time=elapsed_ms,
                                 response_length=length, exception=exc, context=context or {}, response=exc)

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.opened -= len(self.idle)
        self.idle.clear()


class RawHttpSender(RawSender):
    """POST pre-built requests to one URL (http only); fires locust's `request` event per request."""

    request_type = "POST"

    def __init__(self, environment: Any, base_url: str, path: str, bodies: list[bytes], headers: dict[str, str],
                 timeout: float = 30.0, max_connections: int | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the raw sender speaks plain http only, got {base_url!r}")
        port = parts.port or 80
        super().__init__(environment, (parts.hostname, port), path,
                         build_requests(parts.hostname, port, path, bodies, headers), timeout,
                         max_connections=max_connections)

    def _end(self, conn: Connection) -> tuple[int, BaseException | None, bool]:
        status, body, keep = conn.reader.read()
        return len(body), HttpStatusError(status, body) if status >= 400 else None, keep
