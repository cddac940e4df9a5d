"""A loopback server that speaks the Hugging Face hub's HTTP protocol.

The tests point the real ``huggingface_hub`` client (and our downloader) at it, so
no request is mocked: search (``GET /api/models``), repository info with file
metadata (``GET /api/models/{repo}[/revision/{rev}]?blobs=true``), and files
(``HEAD``/``GET /{repo}/resolve/{rev}/{path}``) with the headers the client reads
(``X-Repo-Commit``, ``ETag``, ``X-Linked-Etag``, ``X-Linked-Size``, ``Range`` → 206).
Large (LFS) files are redirected to a "CDN" on another host name (``localhost``
instead of ``127.0.0.1``), as the real hub does, so tests can check that the token
is not sent there. Errors carry ``X-Error-Code`` / ``X-Error-Message`` the way
``huggingface_hub.utils.hf_raise_for_status`` expects.

Fault knobs (:class:`Faults`) drop the connection after N body bytes, throttle,
corrupt a byte, ignore ``Range``; :attr:`HubServer.served` counts the body bytes
sent per file, so a test can tell how much a resume fetched again.

Uploads speak what ``HfApi.create_repo`` / ``create_commit`` / ``upload_file`` /
``upload_folder`` send when Xet is off (``HF_HUB_DISABLE_XET``: this server has no
Xet storage): ``POST /api/repos/create``, ``POST /api/models/{repo}/preupload/{rev}``
(regular or LFS, and the oid already there so unchanged files are skipped), the LFS
batch API (``POST /{repo}.git/info/lfs/objects/batch``), the ``PUT`` of each object to
a presigned-style URL on the "CDN" host (no token sent, as to S3), its verify call,
and the NDJSON commit (``POST /api/models/{repo}/commit/{rev}``). Only a token in
:attr:`HubServer.writers` may write (401 anonymous, 403 read-only). A commit makes a
new commit sha, and the files are served at once by the resolve endpoints (the
previous commits stay resolvable by sha). :attr:`HubServer.received` counts the bytes
uploaded per file.

By hand, serving folders as repositories::

    python -m tests.hub_server --port 8765 --repo org/name=/path/to/folder
    HF_ENDPOINT=http://127.0.0.1:8765 cotrag ...
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import re
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

TOKEN = "hf_loopback_test_token"
"""The token the server accepts unless told others."""
LFS_SUFFIXES = (".gguf", ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx")
LFS_MIN_SIZE = 10 * 1024 * 1024
_BLOCK = 64 * 1024


def git_blob_sha1(data: bytes) -> str:
    """What git (and the hub) call a small file: sha1 of ``blob <size>\\0<bytes>``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass
class ServedFile:
    """One file of a repository, from memory or from disk (for large files served by hand)."""

    path: str
    source: bytes | Path
    size: int = 0
    sha256: str = ""
    git_sha1: str = ""
    lfs: bool = False

    def __post_init__(self) -> None:
        sha256 = hashlib.sha256()
        sha1 = hashlib.sha1(usedforsecurity=False)
        self.size = (
            len(self.source) if isinstance(self.source, bytes) else self.source.stat().st_size
        )
        sha1.update(b"blob %d\0" % self.size)
        for block in self.blocks(0, self.size):
            sha256.update(block)
            sha1.update(block)
        self.sha256 = sha256.hexdigest()
        self.git_sha1 = sha1.hexdigest()
        self.lfs = self.path.lower().endswith(LFS_SUFFIXES) or self.size >= LFS_MIN_SIZE

    @property
    def etag(self) -> str:
        """The hub's etag: the LFS sha256 for large files, the git blob sha1 for small ones."""
        return self.sha256 if self.lfs else self.git_sha1

    @property
    def pointer(self) -> bytes:
        return (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\n"
            f"size {self.size}\n"
        ).encode()

    def blocks(self, start: int, end: int, block: int = _BLOCK) -> Iterator[bytes]:
        """The bytes ``[start, end)`` in blocks of at most ``block``."""
        if isinstance(self.source, bytes):
            for pos in range(start, end, block):
                yield self.source[pos : min(pos + block, end)]
            return
        with open(self.source, "rb") as f:
            f.seek(start)
            pos = start
            while pos < end:
                data = f.read(min(block, end - pos))
                if not data:
                    return
                pos += len(data)
                yield data


@dataclass
class Repo:
    """A model repository at a single commit (``main``)."""

    repo_id: str
    files: dict[str, ServedFile]
    downloads: int = 0
    likes: int = 0
    last_modified: str = "2024-01-01T00:00:00.000Z"
    library: str | None = None
    tags: list[str] = field(default_factory=list)
    pipeline_tag: str | None = "text-generation"
    gated: bool | str = False
    private: bool = False
    license: str | None = None
    commit: str = ""
    history: dict[str, dict[str, ServedFile]] = field(default_factory=dict)
    """Earlier commits (sha → files), still resolvable by sha after a push."""
    messages: list[str] = field(default_factory=list)
    """The summary of every commit pushed, oldest first."""

    def __post_init__(self) -> None:
        ids = "".join(f"{p}\0{f.git_sha1}\n" for p, f in sorted(self.files.items()))
        self.commit = hashlib.sha1(f"{self.repo_id}\n{ids}".encode()).hexdigest()

    def apply(self, files: dict[str, ServedFile], summary: str) -> str:
        """Make ``files`` the new ``main``: a new commit sha (from the parent, tree and
        message, as git's depends on its parent), the old tree kept under its sha."""
        ids = "".join(f"{p}\0{f.git_sha1}\n" for p, f in sorted(files.items()))
        self.history[self.commit] = self.files
        self.files = files
        self.commit = hashlib.sha1(
            f"{self.commit}\n{ids}\n{summary}\n{len(self.history)}".encode()
        ).hexdigest()
        self.messages.append(summary)
        self.last_modified = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        return self.commit

    def at(self, revision: str) -> dict[str, ServedFile] | None:
        """The files at ``main`` or at a commit sha (None: no such revision)."""
        if revision in ("main", self.commit):
            return self.files
        return self.history.get(revision)

    @classmethod
    def of(cls, repo_id: str, files: dict[str, bytes | Path], **meta: Any) -> Repo:
        return cls(repo_id, {p: ServedFile(p, src) for p, src in files.items()}, **meta)

    @classmethod
    def from_folder(cls, repo_id: str, folder: Path, **meta: Any) -> Repo:
        files: dict[str, bytes | Path] = {
            p.relative_to(folder).as_posix(): p
            for p in sorted(folder.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(folder).parts
        }
        if any(name.endswith(".gguf") for name in files):
            meta.setdefault("library", "gguf")
            meta.setdefault("tags", ["gguf"])
        return cls.of(repo_id, files, **meta)


@dataclass
class Faults:
    """Misbehaviour for file bodies (resolve and CDN), set by a test and read per response."""

    drop_after: int | None = None
    """Close the connection after this many body bytes of a response."""
    drop_times: int = 1
    """How many responses to drop; -1 drops every one."""
    throttle_bps: int | None = None
    corrupt_at: int | None = None
    """Flip the byte at this offset of the file."""
    corrupt_times: int = 1
    ignore_range: bool = False
    """Answer 200 with the whole file even when a Range was asked (as some proxies do)."""
    only: str | None = None
    """Apply to this file path only (None: every file)."""

    def reset(self) -> None:
        """Back to a well-behaved hub (what a test sets up before it starts)."""
        for f in fields(self):
            setattr(self, f.name, f.default)


@dataclass
class Seen:
    """One request as the server saw it."""

    method: str
    host: str
    path: str
    authorization: str | None
    range: str | None


class HubServer:
    """The loopback hub: ``with HubServer([repo, ...]) as hub: HfApi(endpoint=hub.url)``."""

    def __init__(
        self,
        repos: list[Repo] | tuple[Repo, ...] = (),
        *,
        tokens: tuple[str, ...] = (TOKEN,),
        writers: tuple[str, ...] | None = None,
        port: int = 0,
        cdn: bool = True,
    ) -> None:
        self.repos = {r.repo_id: r for r in repos}
        self.tokens = set(tokens)
        self.writers = set(tokens if writers is None else writers)
        """Tokens that may create repositories and push (others read only)."""
        self.cdn = cdn
        self.faults = Faults()
        self.served: Counter[tuple[str, str]] = Counter()
        self.received: Counter[tuple[str, str]] = Counter()
        """Bytes uploaded per (repo, path): base64-decoded for regular files, PUT for LFS."""
        self.objects: dict[str, bytes] = {}
        """LFS objects uploaded (sha256 → bytes), shared by every repository as on the hub."""
        self._uploads: dict[str, tuple[str, int]] = {}  # presigned key → (oid, size)
        self._put: Counter[str] = Counter()  # LFS bytes PUT per oid, not yet committed
        self.requests: list[Seen] = []
        self.lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.hub = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cdn_url(self) -> str:
        return f"http://localhost:{self.port}"

    def add(self, repo: Repo) -> Repo:
        self.repos[repo.repo_id] = repo
        return repo

    def bytes_served(self, repo_id: str, path: str) -> int:
        with self.lock:
            return self.served[(repo_id, path)]

    def bytes_received(self, repo_id: str, path: str) -> int:
        with self.lock:
            return self.received[(repo_id, path)]

    def start(self) -> HubServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="hub-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        self._httpd.serve_forever()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the hub client's shared session expects
    server_version = "loopback-hub/1"

    @property
    def hub(self) -> HubServer:
        return self.server.hub  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._route(head=False)

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_POST(self) -> None:
        self._route_write()

    def do_PUT(self) -> None:
        self._route_write()

    # -- routing ---------------------------------------------------------------------------

    def _record(self) -> None:
        """Keep the request as the server saw it (tests check hosts and headers)."""
        with self.hub.lock:
            self.hub.requests.append(
                Seen(
                    self.command,
                    self.headers.get("Host", ""),
                    self.path,
                    self.headers.get("Authorization"),
                    self.headers.get("Range"),
                )
            )

    def _route(self, *, head: bool) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        query = parse_qs(url.query)
        self._record()
        try:
            if self._token_invalid():
                return self._error(401, None, "Invalid credentials in Authorization header")
            if path == "/api/models":
                return self._search(query)
            if path.startswith("/api/models/"):
                return self._info(path[len("/api/models/") :], query)
            if path.startswith("/cdn/"):
                return self._cdn(path[len("/cdn/") :], head=head)
            if "/resolve/" in path:
                return self._resolve(path.lstrip("/"), head=head)
            self._error(404, None, "Sorry, we can't find the page you are looking for.")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _route_write(self) -> None:
        """POST and PUT: repository creation, the upload protocol and commits."""
        url = urlsplit(self.path)
        path = unquote(url.path)
        self._record()
        try:
            body = self._read_body()  # always whole, so keep-alive stays in step
            if self._token_invalid():
                return self._error(401, None, "Invalid credentials in Authorization header")
            post = self.command == "POST"
            if post and path == "/api/repos/create":
                return self._create_repo(body)
            if not post and path.startswith("/lfs-upload/"):
                return self._lfs_put(path[len("/lfs-upload/") :], body)
            if post and path.endswith(".git/info/lfs/objects/batch"):
                return self._lfs_batch(
                    path.lstrip("/")[: -len(".git/info/lfs/objects/batch")], body
                )
            if post and path.endswith(".git/info/lfs/objects/verify"):
                return self._lfs_verify(body)
            match = re.fullmatch(r"/api/models/(.+)/(preupload|commit)/([^/]+)", path)
            if post and match:
                repo_id, action, revision = match.groups()
                if action == "preupload":
                    return self._preupload(repo_id, revision, body)
                return self._commit(repo_id, revision, body)
            self._error(404, None, "Sorry, we can't find the page you are looking for.")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers, then the blank line
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _token(self) -> str | None:
        value = self.headers.get("Authorization") or ""
        return value[len("Bearer ") :] if value.startswith("Bearer ") else None

    def _token_invalid(self) -> bool:
        token = self._token()
        return token is not None and token not in self.hub.tokens

    def _authorised(self) -> bool:
        return self._token() in self.hub.tokens

    def _may_write(self, repo_id: str) -> bool:
        """True for a writer's token; otherwise answers as the hub does and returns False."""
        if self._token() is None:
            self._error(401, None, f"You must be authenticated to write to {repo_id}.")
            return False
        if self._token() not in self.hub.writers:
            self._error(
                403,
                None,
                f"You don't have the rights to write to {repo_id}: "
                "use an access token with write permission",
            )
            return False
        return True

    def _repo(self, repo_id: str) -> Repo | None:
        """The repository, or None after answering as the hub does for missing/private ones."""
        repo = self.hub.repos.get(repo_id)
        if repo is None or (repo.private and not self._authorised()):
            # The hub never confirms a private repository exists: 401 anonymous, 404 signed in.
            status = 404 if self._authorised() else 401
            self._error(status, "RepoNotFound", "Repository not found")
            return None
        return repo

    # -- API -------------------------------------------------------------------------------

    def _search(self, query: dict[str, list[str]]) -> None:
        text = (query.get("search") or [""])[0].lower()
        filters = query.get("filter", [])
        author = next(iter(query.get("author", [])), None)
        repos = [
            r
            for r in self.hub.repos.values()
            if text in r.repo_id.lower()
            and (not r.private or self._authorised())
            and all(f in r.tags or f == r.library for f in filters)
            and (author is None or r.repo_id.split("/")[0] == author)
        ]
        sort = next(iter(query.get("sort", [])), None)
        keys = {
            "downloads": lambda r: r.downloads,
            "likes": lambda r: r.likes,
            "lastModified": lambda r: r.last_modified,
            "createdAt": lambda r: r.last_modified,
            "trendingScore": lambda r: r.likes,
        }
        if sort in keys:
            descending = (query.get("direction") or ["-1"])[0] != "1"
            repos.sort(key=keys[sort], reverse=descending)
        limit = int((query.get("limit") or ["1000"])[0])
        expand = query.get("expand[]") or query.get("expand")
        fields = expand or ["likes", "downloads", "tags", "pipeline_tag", "library_name"]
        items = []
        for repo in repos[:limit]:
            full = self._model_json(repo, blobs=False)
            item = {"_id": full["_id"], "id": repo.repo_id}
            item.update({k: full[k] for k in fields if k in full})
            items.append(item)
        self._json(200, items)

    def _info(self, rest: str, query: dict[str, list[str]]) -> None:
        repo_id, _, revision = rest.partition("/revision/")
        repo = self._repo(repo_id.strip("/"))
        if repo is None:
            return
        if revision and revision not in ("main", repo.commit):
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        blobs = (query.get("blobs") or ["false"])[0].lower() == "true"
        self._json(200, self._model_json(repo, blobs=blobs))

    def _model_json(self, repo: Repo, *, blobs: bool) -> dict[str, Any]:
        siblings = []
        for f in repo.files.values():
            sibling: dict[str, Any] = {"rfilename": f.path}
            if blobs:
                sibling["size"] = f.size
                sibling["blobId"] = git_blob_sha1(f.pointer) if f.lfs else f.git_sha1
                if f.lfs:
                    sibling["lfs"] = {
                        "size": f.size,
                        "sha256": f.sha256,
                        "pointerSize": len(f.pointer),
                    }
            siblings.append(sibling)
        tags = list(repo.tags) + ([f"license:{repo.license}"] if repo.license else [])
        return {
            "_id": repo.commit[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.repo_id.split("/")[0] if "/" in repo.repo_id else None,
            "sha": repo.commit,
            "lastModified": repo.last_modified,
            "createdAt": repo.last_modified,
            "private": repo.private,
            "gated": repo.gated,
            "disabled": False,
            "downloads": repo.downloads,
            "likes": repo.likes,
            "library_name": repo.library,
            "tags": tags,
            "pipeline_tag": repo.pipeline_tag,
            "cardData": {"license": repo.license} if repo.license else {},
            "siblings": siblings,
            "usedStorage": sum(f.size for f in repo.files.values()),
        }

    # -- uploads ---------------------------------------------------------------------------

    def _create_repo(self, body: bytes) -> None:
        payload = json.loads(body or b"{}")
        name, org = payload.get("name"), payload.get("organization")
        repo_id = f"{org}/{name}" if org else str(name)
        if not self._may_write(repo_id):
            return
        if payload.get("type") not in (None, "model"):
            return self._error(400, None, "This loopback hub serves model repositories only.")
        if not name or not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", repo_id):
            return self._error(400, None, f"Invalid repository name {repo_id!r}.")
        with self.hub.lock:
            if repo_id in self.hub.repos:
                # As the hub: the 409 still carries the url (create_repo(exist_ok=True) reads it).
                message = "You already created this model repo"
                body_out = json.dumps({"error": message, "url": f"{self.hub.url}/{repo_id}"})
                headers = {"Content-Type": "application/json", "X-Error-Message": message}
                return self._reply(409, headers, body_out.encode(), head=False)
            self.hub.repos[repo_id] = Repo(
                repo_id, {}, private=payload.get("visibility") == "private"
            )
        self._json(200, {"url": f"{self.hub.url}/{repo_id}", "name": repo_id, "id": repo_id})

    def _writable(self, repo_id: str, revision: str) -> Repo | None:
        """The repository a write goes to, or None after answering why not."""
        repo = self._repo(repo_id)
        if repo is None or not self._may_write(repo_id):
            return None
        if unquote(revision) != "main":
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return None
        return repo

    def _preupload(self, repo_id: str, revision: str, body: bytes) -> None:
        repo = self._writable(repo_id, revision)
        if repo is None:
            return
        answers = []
        for item in json.loads(body)["files"]:
            lfs = _is_lfs(item["path"], int(item["size"]))
            there = repo.files.get(item["path"])
            oid = None if there is None else there.sha256 if there.lfs else there.git_sha1
            answers.append(
                {
                    "path": item["path"],
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    "oid": oid,
                }
            )
        self._json(200, {"files": answers, "commitOid": repo.commit})

    def _lfs_batch(self, repo_id: str, body: bytes) -> None:
        repo = self._repo(repo_id)
        if repo is None or not self._may_write(repo_id):
            return
        payload = json.loads(body)
        if payload.get("operation") != "upload" or "basic" not in payload.get("transfers", []):
            return self._error(400, None, "Only basic uploads are served here.")
        objects = []
        for item in payload["objects"]:
            oid, size = str(item["oid"]), int(item["size"])
            answer: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            with self.hub.lock:
                stored = self.hub.objects.get(oid)
                if stored is None or len(stored) != size:
                    key = secrets.token_hex(16)
                    self.hub._uploads[key] = (oid, size)
                    answer["actions"] = {
                        # Presigned, on another host: the client sends no token there.
                        "upload": {"href": f"{self.hub.cdn_url}/lfs-upload/{key}"},
                        "verify": {"href": f"{self.hub.url}/{repo_id}.git/info/lfs/objects/verify"},
                    }
            objects.append(answer)
        body_out = json.dumps({"transfer": "basic", "objects": objects}).encode()
        self._reply(200, {"Content-Type": "application/vnd.git-lfs+json"}, body_out, head=False)

    def _lfs_put(self, key: str, body: bytes) -> None:
        with self.hub.lock:
            upload = self.hub._uploads.pop(key, None)
        if upload is None:
            return self._reply(403, {"Content-Type": "text/plain"}, b"AccessDenied", head=False)
        oid, size = upload
        if len(body) != size or hashlib.sha256(body).hexdigest() != oid:
            return self._reply(400, {"Content-Type": "text/plain"}, b"BadDigest", head=False)
        with self.hub.lock:
            self.hub.objects[oid] = body
            self.hub._put[oid] += len(body)
        self._reply(200, {"ETag": f'"{hashlib.md5(body).hexdigest()}"'}, b"", head=False)

    def _lfs_verify(self, body: bytes) -> None:
        item = json.loads(body)
        with self.hub.lock:
            stored = self.hub.objects.get(str(item.get("oid")))
        if stored is None or len(stored) != int(item.get("size", -1)):
            return self._error(404, None, "The object was not uploaded.")
        self._json(200, {"message": "ok"})

    def _commit(self, repo_id: str, revision: str, body: bytes) -> None:
        repo = self._writable(repo_id, revision)
        if repo is None:
            return
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            return self._error(400, None, "A commit starts with its header line.")
        header = lines[0]["value"]
        summary = str(header.get("summary") or "")
        if not summary:
            return self._error(400, None, "The commit message is empty.")
        with self.hub.lock:
            parent = header.get("parentCommit")
            if parent and parent != repo.commit:
                return self._error(
                    412, None, "A commit has happened since. Please refresh and try again."
                )
            files = dict(repo.files)
            received: Counter[str] = Counter()
            for line in lines[1:]:
                key, value = line.get("key"), line.get("value") or {}
                path = str(value.get("path", "")).strip("/")
                if key == "file":
                    data = base64.b64decode(value["content"])
                    files[path] = _served(path, data, lfs=False)
                    received[path] += len(data)
                elif key == "lfsFile":
                    stored = self.hub.objects.get(str(value.get("oid")))
                    if stored is None:
                        return self._error(
                            422, None, f"The LFS object of {path} was not uploaded first."
                        )
                    files[path] = _served(path, stored, lfs=True)
                    received[path] += self.hub._put.pop(str(value["oid"]), 0)
                elif key == "deletedFile":
                    if files.pop(path, None) is None:
                        return self._error(
                            404, "EntryNotFound", "A file with this name doesn't exist"
                        )
                elif key == "deletedFolder":
                    files = {p: f for p, f in files.items() if not p.startswith(path + "/")}
                else:
                    return self._error(400, None, f"Unknown commit operation {key!r}.")
            commit = repo.apply(files, summary)
            for path, count in received.items():
                self.hub.received[(repo_id, path)] += count
        self._json(
            200,
            {
                "success": True,
                "commitOid": commit,
                "commitUrl": f"{self.hub.url}/{repo_id}/commit/{commit}",
                "pullRequestUrl": None,
            },
        )

    # -- files -----------------------------------------------------------------------------

    def _resolve(self, rest: str, *, head: bool) -> None:
        repo_id, _, tail = rest.partition("/resolve/")
        revision, _, filename = tail.partition("/")
        repo = self._repo(repo_id)
        if repo is None:
            return
        files = repo.at(revision)
        if files is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        commit = {"X-Repo-Commit": repo.commit if revision == "main" else revision}
        if repo.gated and not self._authorised():
            return self._error(
                401,
                "GatedRepo",
                f"Access to model {repo.repo_id} is restricted. You must have access to it "
                "and be authenticated to access it. Please log in.",
                commit,
            )
        served = files.get(filename)
        if served is None:
            return self._error(404, "EntryNotFound", "Entry not found", commit)
        headers = {**commit, "ETag": f'"{served.etag}"', "Accept-Ranges": "bytes"}
        if served.lfs:
            headers.update(
                {"X-Linked-Etag": f'"{served.sha256}"', "X-Linked-Size": str(served.size)}
            )
            if self.hub.cdn:
                location = f"{self.hub.cdn_url}/cdn/{quote(repo.repo_id)}/{served.sha256}"
                headers.update({"Location": location, "ETag": f'"{git_blob_sha1(served.pointer)}"'})
                return self._reply(302, headers, b"", head=head)
        self._file(repo, served, headers, head=head)

    def _cdn(self, rest: str, *, head: bool) -> None:
        repo_id, _, sha256 = rest.rpartition("/")
        repo = self.hub.repos.get(repo_id)
        trees = [repo.files, *repo.history.values()] if repo else []
        served = next((f for tree in trees for f in tree.values() if f.sha256 == sha256), None)
        if repo is None or served is None:
            return self._reply(404, {"Content-Type": "text/plain"}, b"NoSuchKey", head=head)
        self._file(
            repo, served, {"ETag": f'"{served.sha256}"', "Accept-Ranges": "bytes"}, head=head
        )

    def _file(self, repo: Repo, served: ServedFile, headers: dict[str, str], *, head: bool) -> None:
        faults = self.hub.faults
        applies = faults.only is None or faults.only == served.path
        start, end = 0, served.size  # [start, end)
        status = 200
        asked = self.headers.get("Range")
        if asked and not (applies and faults.ignore_range):
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", asked.strip())
            if match:
                start = int(match.group(1))
                end = min(int(match.group(2)) + 1, served.size) if match.group(2) else served.size
                if start >= served.size:
                    headers = {**headers, "Content-Range": f"bytes */{served.size}"}
                    return self._reply(416, headers, b"", head=head)
                status = 206
                headers = {**headers, "Content-Range": f"bytes {start}-{end - 1}/{served.size}"}
        headers = {
            **headers,
            "Content-Type": "application/octet-stream",
            "Content-Length": str(end - start),
        }
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self._body(repo, served, start, end, applies)

    def _body(self, repo: Repo, served: ServedFile, start: int, end: int, applies: bool) -> None:
        faults = self.hub.faults
        bps = faults.throttle_bps if applies else None
        block = max(4096, min(_BLOCK, bps // 100)) if bps else _BLOCK
        drop = None
        with self.hub.lock:
            if applies and faults.drop_after is not None and faults.drop_times != 0:
                drop = faults.drop_after
                faults.drop_times -= 1 if faults.drop_times > 0 else 0
        t0 = time.monotonic()
        sent = 0
        pos = start
        for data in served.blocks(start, end, block):
            data = self._maybe_corrupt(data, pos, applies)
            if drop is not None and sent + len(data) > drop:
                self._send(repo, served, data[: drop - sent])
                # Abrupt close mid-body: the client sees fewer bytes than Content-Length.
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self._send(repo, served, data)
            sent += len(data)
            pos += len(data)
            if bps:
                delay = t0 + sent / bps - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

    def _maybe_corrupt(self, data: bytes, pos: int, applies: bool) -> bytes:
        faults = self.hub.faults
        at = faults.corrupt_at
        if not applies or at is None or not pos <= at < pos + len(data):
            return data
        with self.hub.lock:
            if faults.corrupt_times == 0:
                return data
            faults.corrupt_times -= 1 if faults.corrupt_times > 0 else 0
        flipped = bytearray(data)
        flipped[at - pos] ^= 0xFF
        return bytes(flipped)

    def _send(self, repo: Repo, served: ServedFile, data: bytes) -> None:
        self.wfile.write(data)
        with self.hub.lock:
            self.hub.served[(repo.repo_id, served.path)] += len(data)

    # -- replies ---------------------------------------------------------------------------

    def _json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self._reply(status, {"Content-Type": "application/json"}, body, head=False)

    def _error(
        self,
        status: int,
        code: str | None,
        message: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": message, **(extra or {})}
        if code:
            headers["X-Error-Code"] = code
        body = json.dumps({"error": message}).encode()
        self._reply(status, headers, body, head=self.command == "HEAD")

    def _reply(self, status: int, headers: dict[str, str], body: bytes, *, head: bool) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and not head:
            self.wfile.write(body)


def _is_lfs(path: str, size: int) -> bool:
    """The hub's rule as this server applies it: model suffixes, or 10 MB and more."""
    return path.lower().endswith(LFS_SUFFIXES) or size >= LFS_MIN_SIZE


def _served(path: str, data: bytes, *, lfs: bool) -> ServedFile:
    """A pushed file, stored the way the client sent it (an empty file goes regular)."""
    served = ServedFile(path, data)
    served.lfs = lfs
    return served


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve folders as Hugging Face model repos.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--repo", action="append", default=[], metavar="ORG/NAME=FOLDER", required=True
    )
    parser.add_argument("--token", action="append", default=[], help="accepted tokens")
    parser.add_argument("--gated", action="append", default=[], metavar="ORG/NAME")
    parser.add_argument("--throttle", type=int, default=None, metavar="BYTES_PER_S")
    args = parser.parse_args()
    repos = []
    for spec in args.repo:
        repo_id, _, folder = spec.partition("=")
        print(f"hashing {folder} …", flush=True)
        gated = "manual" if repo_id in args.gated else False
        repos.append(Repo.from_folder(repo_id, Path(folder).expanduser(), gated=gated))
    hub = HubServer(repos, tokens=tuple(args.token) or (TOKEN,), port=args.port)
    hub.faults.throttle_bps = args.throttle
    print(f"serving {', '.join(r.repo_id for r in repos)} at {hub.url}")
    print(f"  HF_ENDPOINT={hub.url}   token: {', '.join(sorted(hub.tokens))}")
    with contextlib.suppress(KeyboardInterrupt):
        hub.serve_forever()


if __name__ == "__main__":
    main()
