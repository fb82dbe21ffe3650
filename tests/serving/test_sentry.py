"""Sentry: off without SENTRY_DSN; with it, captured exceptions reach the DSN's server."""

from __future__ import annotations

import gzip
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from aidetector.serving.sentry import init_sentry

SCRIPT = """
import sentry_sdk
from aidetector.serving.sentry import init_sentry
assert init_sentry(sys.argv[1], model_version="7")
try:
    raise RuntimeError("boom from the serving test")
except RuntimeError as error:
    sentry_sdk.capture_exception(error)
sentry_sdk.flush(timeout=10)
"""


def test_without_a_dsn_sentry_stays_off() -> None:
    assert init_sentry(None) is False
    assert init_sentry("") is False


def test_with_a_dsn_exceptions_are_sent_to_it() -> None:
    received: list[bytes] = []

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            received.append(body)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    sink = HTTPServer(("127.0.0.1", 0), Sink)
    thread = threading.Thread(target=sink.serve_forever, daemon=True)
    thread.start()
    try:
        dsn = f"http://publickey@127.0.0.1:{sink.server_port}/1"
        # A child process: sentry_sdk.init is global and must not leak into other tests.
        subprocess.run([sys.executable, "-c", "import sys\n" + SCRIPT, dsn], check=True, timeout=60)
    finally:
        sink.shutdown()
    body = b"".join(received)
    assert b"boom from the serving test" in body
    assert b"model_version" in body
