"""A fake mirror: an HTTP server on 127.0.0.1 that serves files from a dict."""

import http.server
import socket
import threading

import pytest


class FakeMirror:
    """Serves ``files[path] = bytes`` at ``url + path``; remembers every path asked for."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        # Paths whose reply claims more bytes than it sends (a dropped connection).
        self.cut_short: set[str] = set()
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 5  # a stuck client cannot hold the server

            def do_GET(self) -> None:
                mirror.requests.append(self.path)
                body = mirror.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                extra = 100 if self.path in mirror.cut_short else 0
                self.send_header("Content-Length", str(len(body) + extra))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def mirror():
    server = FakeMirror()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def closed_port_url():
    """A loopback URL where nothing listens: every connection is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
