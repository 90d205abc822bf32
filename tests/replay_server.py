"""A local HTTP server that replays recorded-format API answers, and a guard that refuses every
connection off this machine, for the network data sources' tests.

The server listens on 127.0.0.1 (a free port) in a thread; each route answers a request from
the bars it was given, in the format of the real API, and scripted faults (a 429 rate-limit
answer, an error) are served first for the requests they match. Every request is logged.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

LOCAL_HOSTS = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any = ""
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return (self.body if isinstance(self.body, str) else json.dumps(self.body)).encode()


@dataclass
class Fault:
    """Answer `reply` to the next `times` requests whose path is `path` (and whose query holds
    `query`), before the route answers."""

    path: str
    reply: Reply
    times: int = 1
    query: dict[str, str] = field(default_factory=dict)

    def matches(self, request: Request) -> bool:
        return (
            self.times > 0
            and request.path == self.path
            and all(request.query.get(k) == v for k, v in self.query.items())
        )


Route = Callable[[Request], Reply]


class ReplayServer:
    """`with ReplayServer(routes) as server:` serves `routes` (path -> answer) on
    `server.base_url`; `server.requests` logs every request in order."""

    def __init__(self, routes: dict[str, Route], faults: list[Fault] | None = None) -> None:
        self.routes = routes
        self.faults = faults or []
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def paths(self, path: str) -> list[dict[str, str]]:
        """The queries of the logged requests to `path`, in order."""
        return [r.query for r in self.requests if r.path == path]

    def __enter__(self) -> ReplayServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def answer(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            fault = next((f for f in self.faults if f.matches(request)), None)
            if fault is not None:
                fault.times -= 1
                return fault.reply
        route = self.routes.get(request.path) or self.routes.get("*")
        return route(request) if route else Reply(404, {"error": f"no route {request.path}"})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server API)
                parts = urlsplit(self.path)
                request = Request("GET", unquote(parts.path), dict(parse_qsl(parts.query)))
                reply = server.answer(request)
                payload = reply.payload()
                self.send_response(reply.status)
                headers = {"Content-Type": "application/json", **reply.headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


# ------------------------------------------------------------------------------ the guard


class InternetRefused(OSError):
    pass


def _host(address: Any) -> str:
    return str(address[0]) if isinstance(address, tuple) else str(address)


def refuse_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every Python socket connection and name lookup off this machine fail."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and _host(address) not in LOCAL_HOSTS:
            raise InternetRefused(f"a test tried to reach {address}: tests stay offline")

    def connect(sock: socket.socket, address: Any) -> None:
        check(sock, address)
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        check(sock, address)
        return real_connect_ex(sock, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and str(host) not in LOCAL_HOSTS:
            raise InternetRefused(f"a test tried to look up {host}: tests stay offline")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@contextmanager
def serving(routes: dict[str, Route], faults: list[Fault] | None = None) -> Iterator[ReplayServer]:
    with ReplayServer(routes, faults) as server:
        yield server
