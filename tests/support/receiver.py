"""A local HTTP receiver standing in for an alert target: records every POST, answers from a script.

A threaded `http.server` on a random loopback port. Replies are taken in order (then 204 for
everything); `hold()` makes the next requests wait, unanswered, until `release()`, which is how a test
catches a notifier in the middle of a delivery.
"""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any

Reply = tuple[int, dict[str, str], bytes]


class Receiver:
    """Start with `start()`, stop with `stop()`; `url` names a path that stands for a secret token."""

    def __init__(
        self, replies: list[Reply] | None = None, token: str = "s3cret-token", prefix: str = "/hooks/"
    ) -> None:
        self.replies = list(replies or [])
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.open = threading.Event()
        self.open.set()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.arrived:
                    receiver.requests.append(
                        {"path": self.path, "type": self.headers.get("Content-Type"), "json": json.loads(body)}
                    )
                    receiver.arrived.notify_all()
                receiver.open.wait()
                with receiver.lock:
                    status, headers, payload = receiver.replies.pop(0) if receiver.replies else (204, {}, b"")
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{prefix}{token}"

    def start(self) -> Receiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.open.set()
        self.server.shutdown()
        self.server.server_close()

    def hold(self) -> None:
        """Leave the next requests unanswered until `release()`."""
        self.open.clear()

    def release(self) -> None:
        self.open.set()

    def settled(self) -> bool:
        """Every scripted reply has been given."""
        with self.lock:
            return not self.replies

    def payloads(self) -> list[dict[str, Any]]:
        with self.lock:
            return [request["json"] for request in self.requests]

    def events(self, job: str | None = None) -> list[str]:
        return [p["event"] for p in self.payloads() if job is None or p.get("job") == job]
