"""A loopback model hub: serves folders in the hub's layout through the routes huggingface_hub calls.

Point HF_ENDPOINT at `HubServer.url` and the real client (snapshot_download, hf_hub_download)
talks to it: no mock of the client. Routes, as read in huggingface_hub's hf_api.py and
file_download.py:
- GET  /api/models/<repo>/revision/<rev>    model info: sha (the commit) and siblings
- GET  /api/models/<repo>/tree/<rev>        the file list (type, path, size, oid, lfs)
- HEAD|GET /<repo>/resolve/<rev>/<file>     the bytes, with X-Repo-Commit, ETag, Content-Length,
                                            Accept-Ranges and Range (206) for resumed downloads
Weight files are served as LFS files (ETag = sha256), the rest as git blobs (ETag = blob sha1).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

LFS_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".msgpack", ".h5", ".pt")


def _blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubServer:
    """`repos`: repo id -> folder. Counts the GETs of each file so tests can see what was fetched."""

    def __init__(self, repos: dict[str, Path]) -> None:
        self.repos = {repo: Path(folder) for repo, folder in repos.items()}
        self.commits = {repo: hashlib.sha1(repo.encode()).hexdigest() for repo in repos}
        self.fetched: Counter[tuple[str, str]] = Counter()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def files(self, repo: str) -> dict[str, Path]:
        root = self.repos[repo]
        return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}

    def tree(self, repo: str) -> list[dict]:
        entries, folders = [], set()
        for name, path in self.files(repo).items():
            data = path.read_bytes()
            entry = {"type": "file", "path": name, "size": len(data), "oid": _blob_oid(data)}
            if name.endswith(LFS_SUFFIXES):
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            entries.append(entry)
            parts = name.split("/")[:-1]
            folders.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        return [{"type": "directory", "path": f, "oid": _blob_oid(f.encode()), "size": 0} for f in sorted(folders)] + entries

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet test output
                pass

            def _json(self, body: object, status: int = 200) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _not_found(self, code: str = "RepoNotFound") -> None:
                data = b'{"error": "Repository not found"}'
                self.send_response(404)
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", "Repository not found")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _api(self, path: str) -> None:
                rest = path.removeprefix("/api/models/")
                for marker in ("/revision/", "/tree/"):
                    repo, found, _ = rest.partition(marker)
                    if found and repo in hub.repos:
                        if marker == "/tree/":
                            return self._json(hub.tree(repo))
                        siblings = [{"rfilename": name} for name in hub.files(repo)]
                        return self._json({"id": repo, "modelId": repo, "sha": hub.commits[repo],
                                           "private": False, "siblings": siblings})  # fmt: skip
                self._not_found()

            def _resolve(self, path: str) -> None:
                repo, found, rest = path.lstrip("/").partition("/resolve/")
                name = rest.partition("/")[2]
                if not found or repo not in hub.repos:
                    return self._not_found()
                file = hub.files(repo).get(name)
                if file is None:
                    return self._not_found("EntryNotFound")
                data = file.read_bytes()
                etag = hashlib.sha256(data).hexdigest() if name.endswith(LFS_SUFFIXES) else _blob_oid(data)
                start = 0
                ranged = self.headers.get("Range", "")
                if ranged.startswith("bytes="):
                    start = int(ranged.removeprefix("bytes=").split("-")[0] or 0)
                body = data[start:]
                self.send_response(206 if start else 200)
                self.send_header("X-Repo-Commit", hub.commits[repo])
                self.send_header("ETag", f'"{etag}"')
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(body)))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if self.command == "GET":
                    hub.fetched[(repo, name)] += 1
                    self.wfile.write(body)

            def do_GET(self) -> None:
                path = unquote(urlparse(self.path).path)
                self._api(path) if path.startswith("/api/models/") else self._resolve(path)

            def do_HEAD(self) -> None:
                self._resolve(unquote(urlparse(self.path).path))

        return Handler
