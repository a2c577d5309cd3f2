"""Tests of the sinks, and a local HTTP receiver they deliver to."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """An HTTP server on 127.0.0.1 recording every POST; fails the first ``fail_first``.

    Use as a context manager; ``url`` is its base address, ``requests`` the recorded
    ``{"path", "headers", "body", "json"}`` dicts of the successful requests.
    """

    def __init__(self, *, fail_first: int = 0, status: int = 500) -> None:
        self.fail_first = fail_first
        self.fail_status = status
        self.attempts = 0
        self.requests: list[dict[str, Any]] = []
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver.cond:
                    receiver.attempts += 1
                    failing = receiver.attempts <= receiver.fail_first
                    if not failing:
                        receiver.requests.append(
                            {
                                "path": self.path,
                                "headers": {k.lower(): v for k, v in self.headers.items()},
                                "body": body,
                                "json": json.loads(body) if body else None,
                            }
                        )
                    receiver.cond.notify_all()
                self.send_response(receiver.fail_status if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until ``predicate(requests)`` is true; return the requests (or fail)."""
        with self.cond:
            if not self.cond.wait_for(lambda: predicate(self.requests), timeout):
                raise AssertionError(f"receiver timed out; got {self.requests!r}")
            return list(self.requests)
