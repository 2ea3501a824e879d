"""``/metrics``, ``/healthz`` and ``/readyz`` on one port, served from a daemon thread.

``/healthz`` answers 200 while the process runs (its HTTP thread is alive); ``/readyz``
answers 200 when every readiness check passes and 503 otherwise, with one line per check
(``consuming: ok``, ``partitions: none assigned``, ...). ``/metrics`` is the Prometheus
text format of the process's registry. The port is a setting per process; 0 serves
nothing (the default, so tests and parallel processes never collide).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

Check = Callable[[], tuple[bool, str]]
"""A readiness check: (ok, a few words on why)."""

ENDPOINTS = ("/metrics", "/healthz", "/readyz")


class Readiness:
    """Named readiness checks; ready when all pass (and there is at least one)."""

    def __init__(self) -> None:
        self.checks: dict[str, Check] = {}

    def add(self, name: str, check: Check) -> None:
        self.checks[name] = check

    def report(self) -> tuple[bool, list[str]]:
        ok, lines = bool(self.checks), []
        for name, check in self.checks.items():
            try:
                passed, why = check()
            except Exception as exc:  # a check that raises fails, it does not crash
                passed, why = False, f"{type(exc).__name__}: {exc}"
            ok &= passed
            lines.append(f"{name}: {'ok' if passed else 'not ready'} ({why})")
        return ok, lines


class HealthServer:
    """The HTTP server of one process (see the module docstring); ``port=0`` binds a free
    port only when ``ephemeral`` is set (tests), otherwise :func:`serve` starts nothing."""

    def __init__(
        self,
        registry: CollectorRegistry,
        readiness: Readiness,
        *,
        host: str = "0.0.0.0",
        port: int = 0,
        on_ready: Callable[[bool], None] | None = None,
    ) -> None:
        self.registry = registry
        self.readiness = readiness
        self.on_ready = on_ready
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._handle(self)

            def log_message(self, format: str, *args: Any) -> None:  # scrapes are not events
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="demandcast-health", daemon=True
        )

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("metrics and health on port %d (/metrics /healthz /readyz)", self.port)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        path = request.path.split("?", 1)[0]
        status, ctype = 200, "text/plain; charset=utf-8"
        if path == "/metrics":
            self.ready()  # the readiness gauge is current in every scrape
            body = generate_latest(self.registry)
            ctype = CONTENT_TYPE_LATEST
        elif path == "/healthz":
            body = b"ok\n"
        elif path == "/readyz":
            ok, lines = self.readiness.report()
            status = 200 if ok else 503
            body = ("\n".join(["ready" if ok else "not ready", *lines]) + "\n").encode()
        else:
            status, body = 404, b"not found: /metrics /healthz /readyz\n"
        request.send_response(status)
        request.send_header("Content-Type", ctype)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def ready(self) -> bool:
        ok, _ = self.readiness.report()
        if self.on_ready is not None:
            self.on_ready(ok)
        return ok


def serve(
    registry: CollectorRegistry,
    readiness: Readiness,
    port: int,
    host: str = "0.0.0.0",
    on_ready: Callable[[bool], None] | None = None,
) -> HealthServer | None:
    """Start the server on ``port`` (None when ``port`` is 0: off)."""
    if not port:
        return None
    return HealthServer(registry, readiness, host=host, port=port, on_ready=on_ready).start()
