"""A small iris prediction server: GET /healthz, POST /predict {"instances": [[5.1, 3.5, 1.4, 0.2], ...]}.

Standard library HTTP server; exits cleanly (code 0) on SIGTERM or SIGINT.
"""

import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import joblib

VERSION = "1"
MODEL = joblib.load(os.environ.get("MODEL_PATH", "/app/model/model.joblib"))


class Handler(BaseHTTPRequestHandler):
    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._reply(200, {"status": "ok", "version": VERSION})
        else:
            self._reply(404, {"error": "try GET /healthz or POST /predict"})

    def do_POST(self) -> None:
        if self.path != "/predict":
            self._reply(404, {"error": "try POST /predict"})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
            instances = json.loads(self.rfile.read(length))["instances"]
            labels = MODEL["model"].predict(instances)
        except (ValueError, KeyError, TypeError) as exc:
            self._reply(400, {"error": f"expected {{\"instances\": [[4 numbers], ...]}}: {exc}"})
            return
        self._reply(200, {"predictions": [MODEL["classes"][int(i)] for i in labels]})

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def main() -> None:
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler)

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"iris server {VERSION} listening on :{server.server_address[1]}", flush=True)
    server.serve_forever()
    server.server_close()
    print("iris server stopped", flush=True)


if __name__ == "__main__":
    main()
