"""A small text classifier server whose weights live in a separate model image.

    GET  /healthz   {"ok": true, "model": "<sha256>" | null, "reason": ..., "files": {...}, "version": "1"}
    POST /predict   {"instances": ["a great product", ...]}  ->  {"predictions": [{"label": ..., "scores": {...}}]}

The weights folder is read from $OCIBUILD_MODEL_WEIGHTS (default /mnt/models/weights/models: the model
image "weights" mounted read-only at /mnt/models/weights, its files under /models/). Without it, or with a
broken one, the server still starts: /healthz answers 200 with "model": null and the reason, /predict 503.

"model" is the sha256 of the text `sha256sum` prints for every regular file of the folder, sorted by path
relative to the folder ("<hex>  <path>\n" per file): the same files give the same value wherever they are.

Standard library only; writes nothing (runs as any user, on a read-only root); exits with code 0 on
SIGTERM or SIGINT.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import signal
import sys
import threading
import zlib
from array import array
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

VERSION = "1"
DEFAULT_WEIGHTS = "/mnt/models/weights/models"
FORMAT = "ocibuild-example/hashed-centroids-v1"
TOKEN = re.compile(r"[a-z0-9']+")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def folder_digest(folder: Path) -> tuple[str, dict[str, str]]:
    """(sha256 of the sha256sum listing of every regular file, {relative path: sha256})."""
    files: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in filenames:
            p = Path(dirpath) / name
            if p.is_file():
                files[p.relative_to(folder).as_posix()] = file_sha256(p)
    files = dict(sorted(files.items()))
    listing = "".join(f"{sha}  {rel}\n" for rel, sha in files.items())
    return hashlib.sha256(listing.encode()).hexdigest(), files


class Model:
    """Nearest centroid over the mean of hashed token embeddings (float32, little-endian, buckets x dim)."""

    def __init__(self, folder: Path) -> None:
        spec = json.loads((folder / "model.json").read_text())
        if spec.get("format") != FORMAT:
            raise ValueError(f"model.json: format {spec.get('format')!r}, expected {FORMAT!r}")
        self.dim = int(spec["dim"])
        self.buckets = int(spec["buckets"])
        self.classes: list[str] = list(spec["classes"])
        self.centroids: list[list[float]] = [[float(x) for x in c] for c in spec["centroids"]]
        if len(self.centroids) != len(self.classes) or any(len(c) != self.dim for c in self.centroids):
            raise ValueError("model.json: centroids do not match classes x dim")
        emb = spec["embeddings"]
        self.table = array("f")
        if self.table.itemsize != 4:
            raise ValueError("this Python has no 4-byte float array")
        data = (folder / emb["file"]).read_bytes()
        if len(data) != self.buckets * self.dim * 4:
            raise ValueError(f"{emb['file']}: {len(data)} bytes, expected {self.buckets} x {self.dim} float32")
        self.table.frombytes(data)
        if sys.byteorder != "little":
            self.table.byteswap()

    def embed(self, text: str) -> list[float]:
        vec = [0.0] * self.dim
        tokens = TOKEN.findall(text.lower())
        for tok in tokens:
            row = (zlib.crc32(tok.encode()) % self.buckets) * self.dim
            for i in range(self.dim):
                vec[i] += self.table[row + i]
        return [x / len(tokens) for x in vec] if tokens else vec

    def predict(self, text: str) -> dict[str, Any]:
        vec = self.embed(text)
        dist = [math.fsum((a - b) ** 2 for a, b in zip(vec, c, strict=True)) for c in self.centroids]
        # softmax over the negative squared distances per dimension
        low = min(dist)
        weights = [math.exp((low - d) / self.dim) for d in dist]
        total = sum(weights)
        scores = {label: round(w / total, 6) for label, w in zip(self.classes, weights, strict=True)}
        return {"label": self.classes[dist.index(low)], "scores": scores}


class State:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.model: Model | None = None
        self.digest: str | None = None
        self.files: dict[str, str] = {}
        self.reason: str | None = None
        if not folder.is_dir():
            self.reason = f"no model folder at {folder}"
            return
        try:
            self.digest, self.files = folder_digest(folder)
            self.model = Model(folder)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.digest, self.model = None, None
            self.reason = f"cannot load the model from {folder}: {exc}"


STATE: State


class Handler(BaseHTTPRequestHandler):
    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            body: dict[str, Any] = {"ok": True, "model": STATE.digest, "version": VERSION,
                                    "weights": str(STATE.folder), "files": STATE.files}
            if STATE.reason:
                body["reason"] = STATE.reason
            self._reply(200, body)
        else:
            self._reply(404, {"error": "try GET /healthz or POST /predict"})

    def do_POST(self) -> None:
        if self.path != "/predict":
            self._reply(404, {"error": "try POST /predict"})
            return
        if STATE.model is None:
            self._reply(503, {"error": "no model loaded", "reason": STATE.reason})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
            instances = json.loads(self.rfile.read(length))["instances"]
            if not isinstance(instances, list) or not all(isinstance(t, str) for t in instances):
                raise TypeError("instances must be a list of strings")
        except (ValueError, KeyError, TypeError) as exc:
            self._reply(400, {"error": f'expected {{"instances": ["some text", ...]}}: {exc}'})
            return
        self._reply(200, {"predictions": [STATE.model.predict(t) for t in instances], "model": STATE.digest})

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def main() -> None:
    global STATE
    STATE = State(Path(os.environ.get("OCIBUILD_MODEL_WEIGHTS", DEFAULT_WEIGHTS)))
    if STATE.model is not None:
        print(f"model {STATE.digest} loaded from {STATE.folder} ({len(STATE.files)} files)", flush=True)
    else:
        print(f"starting without a model: {STATE.reason}", flush=True)
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler)

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"model server {VERSION} listening on :{server.server_address[1]}", flush=True)
    server.serve_forever()
    server.server_close()
    print("model server stopped", flush=True)


if __name__ == "__main__":
    main()
