"""A local stand-in for a speech-model publisher's web server (http.server in a thread): it
serves archives by path, and can announce more bytes than it sends, as a server whose connection
drops mid-download does."""

from __future__ import annotations

import http.server
import threading


class Publisher:
    def __init__(self, files: dict[str, bytes], *, cut: dict[str, int] | None = None) -> None:
        """``files``: path -> body. ``cut``: path -> how many of the body's bytes are sent
        before the connection is closed, with the whole body's Content-Length announced."""
        self.files = files
        self.cut = cut or {}
        self.requests: list[str] = []
        self.authorizations: list[str | None] = []
        publisher = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                publisher.requests.append(self.path)
                publisher.authorizations.append(self.headers.get("Authorization"))
                body = publisher.files.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                sent = publisher.cut.get(self.path, len(body))
                self.wfile.write(memoryview(body)[:sent])
                self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that hangs up mid-body (a refused download) is expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.root = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.base_url = f"{self.root}/vosk/models"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return self.root + path

    def __enter__(self) -> Publisher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
