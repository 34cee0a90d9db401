"""A local stand-in for the dataset and model hosts: a threaded HTTP server on 127.0.0.1.

It serves byte strings under upstream-like paths, honours ``Range: bytes=N-`` (206),
answers 404 for anything else, can drop a connection after N bytes of a body
(once per arm), and records every request's path and Range header.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class Upstream:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.drops: dict[str, int] = {}  # path -> bytes to send before the next response is cut off
        self.ignore_range = False
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep the test output clean
                pass

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                rng = self.headers.get("Range")
                owner.requests.append((path, rng))
                body = owner.files.get(path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                if rng and not owner.ignore_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_error(416, "Range Not Satisfiable")
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                payload = body[start:]
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                cut = owner.drops.pop(path, None)
                if cut is not None:  # promise the whole body, send part of it, hang up
                    self.wfile.write(payload[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Upstream:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str) -> str:
        return self.base + path

    def ranges(self, path: str) -> list[str | None]:
        return [r for p, r in self.requests if p == path]


def serve_mirror(server: Upstream, cfg: dict, mirror) -> None:
    """Serve every dataset file of params under its upstream path (endpoints pointed at ``server``)."""
    from urllib.parse import urlsplit as split

    from culteval.acquire import effective_url

    for name, spec in cfg["datasets"].items():
        for fname, fspec in spec["files"].items():
            source = mirror / name / fname
            if source.is_file():
                server.files[split(effective_url(fspec["url"])).path] = source.read_bytes()
