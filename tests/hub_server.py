"""A small in-memory Hugging Face Hub for tests, so push and pull run the real `huggingface_hub` client
offline.

It speaks exactly the requests that huggingface_hub 2.x sends for `whoami`, `create_repo`, `create_branch`,
`upload_folder` (classic path: preupload → LFS batch → PUT → verify → NDJSON commit), `repo_info`,
`list_repo_tree` and `snapshot_download` (HEAD/GET `resolve`). Shapes were read from the installed client:
`hf_api.py`, `_commit_api.py`, `lfs.py`, `file_download.py`, `_snapshot_download.py`, `utils/_http.py`.

Xet is not spoken: with `hf_xet` installed the client uploads through Xet unless `HF_HUB_DISABLE_XET=1`
(read at import into `huggingface_hub.constants.HF_HUB_DISABLE_XET`), so tests set that flag. Downloads need
no flag: the server never sends `X-Xet-Hash`, so the client falls back to plain HTTP.

Use: `with HubServer({"hf_token": "alice"}) as hub:` then pass `endpoint=hub.url`; call
`isolate_hf(monkeypatch,
tmp_path)` first so the client uses a tmp cache, no saved token, no Xet, and is online despite conftest.py.

Like the real Hub, LFS downloads are a 302 from `resolve` to a signed "CDN" URL on another origin
(`localhost` instead of `127.0.0.1`): the client must take the metadata from the redirect and drop its token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, quote, unquote, urlsplit

import yaml

LFS_EXTENSIONS = (".safetensors", ".onnx", ".pkl", ".bin", ".pt", ".png", ".wav")
GITATTRIBUTES = "".join(f"*{ext} filter=lfs diff=lfs merge=lfs -text\n" for ext in LFS_EXTENSIONS)


class HubHTTPError(Exception):
    """An HTTP error answer, with the headers the client keys its exception type on."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        **body: Any,
    ):
        super().__init__(message)
        self.status, self.message, self.code, self.headers, self.body = (
            status,
            message,
            code,
            headers or {},
            body,
        )


def git_blob_oid(data: bytes) -> str:
    """Git's object id of a blob (what the Hub reports as `oid` of a regular file)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass
class RepoFile:
    data: bytes | None  # regular file content; None for LFS files (content lives in the LFS store)
    size: int
    lfs_sha256: str | None = None

    @property
    def blob_oid(self) -> str:
        if self.lfs_sha256 is None:
            return git_blob_oid(self.data or b"")
        return git_blob_oid(lfs_pointer(self.lfs_sha256, self.size))


@dataclass
class Commit:
    oid: str
    files: dict[str, RepoFile]
    summary: str
    date: str


@dataclass
class Repo:
    repo_id: str
    owner: str
    private: bool
    created: str
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)

    def resolve(self, rev: str) -> Commit:
        oid = self.branches.get(rev, rev)
        if oid not in self.commits:
            raise HubHTTPError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return self.commits[oid]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


class HubServer:
    """A threaded Hub on 127.0.0.1 at a random port. `tokens` maps accepted bearer tokens to user names.

    `requests` records `(method, path)` of every call, so tests can check which protocol path was taken;
    `lfs_objects` holds uploaded LFS content by sha256.
    """

    def __init__(self, tokens: dict[str, str] | None = None, lfs_min_bytes: int = 10 * 1024 * 1024):
        self.tokens = dict(tokens or {})
        self.lfs_min_bytes = lfs_min_bytes
        self.repos: dict[str, Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.connections: set[socket.socket] = set()
        self.lock = threading.RLock()
        self._secret = secrets.token_bytes(16)
        self._counter = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.hub = self  # type: ignore[attr-defined]
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        # A second origin for signed LFS URLs, like cdn-lfs.huggingface.co; same origin if localhost is odd.
        self.cdn_url = f"http://localhost:{self.port}" if _localhost_is_loopback() else self.url
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="hub-server", daemon=True
        )

    def start(self) -> HubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut open keep-alive connections, so clients really find the Hub unreachable."""
        self._httpd.shutdown()
        self._httpd.server_close()
        with self.lock:
            for conn in list(self.connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- helpers used by the handler -------------------------------------------------------------
    def user_for(self, authorization: str | None) -> str | None:
        """The user behind a bearer token; an unknown token is a 401 whatever the endpoint, as on the Hub."""
        if not authorization:
            return None
        token = authorization.split(" ", 1)[-1].strip()
        if token not in self.tokens:
            raise HubHTTPError(401, "Invalid credentials in Authorization header")
        return self.tokens[token]

    def readable(self, repo_id: str, user: str | None) -> Repo:
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and user != repo.owner):
            raise HubHTTPError(404, "Repository not found", "RepoNotFound")
        return repo

    def writable(self, repo_id: str, user: str | None) -> Repo:
        repo = self.readable(repo_id, user)
        if user is None:
            raise HubHTTPError(401, "You must be authenticated to write to a repo")
        if user != repo.owner:
            raise HubHTTPError(403, f"You don't have the rights to write to {repo_id}")
        return repo

    def sign(self, what: str) -> str:
        return hmac.new(self._secret, what.encode(), hashlib.sha256).hexdigest()[:32]

    def check_signature(self, what: str, query: dict[str, list[str]]) -> None:
        if not hmac.compare_digest(query.get("sig", [""])[0], self.sign(what)):
            raise HubHTTPError(403, "Bad or missing signature")

    def new_commit(
        self, repo: Repo, parent: Commit | None, files: dict[str, RepoFile], summary: str
    ) -> Commit:
        self._counter += 1
        seed = f"{repo.repo_id}|{parent.oid if parent else ''}|{summary}|{self._counter}|{sorted(files)}"
        commit = Commit(hashlib.sha1(seed.encode()).hexdigest(), files, summary, _now())
        repo.commits[commit.oid] = commit
        return commit

    def upload_mode(self, path: str, size: int, sample: bytes) -> str:
        """Like the Hub: LFS by .gitattributes extension, for binary content, or above a size (10 MB)."""
        binary = b"\0" in sample
        if path.endswith(LFS_EXTENSIONS) or (binary and size > 0) or size >= self.lfs_min_bytes:
            return "lfs"
        return "regular"


def isolate_hf(monkeypatch: Any, home: Path) -> None:
    """Point huggingface_hub (this process and subprocesses) at a private HF home, online, with Xet off.

    Most settings are read once at import into `huggingface_hub.constants`, so both the environment and the
    constants are patched; tests/conftest.py sets HF_HUB_OFFLINE=1 for the session, undone here.
    """
    from huggingface_hub import constants

    for key in (
        "HF_TOKEN",
        "HF_HUB_OFFLINE",
        "HF_ENDPOINT",
        "HF_OIDC_RESOURCE",
        "HF_HUB_CACHE",
        "HF_TOKEN_PATH",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    for name, value in {
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_OFFLINE": False,
    }.items():
        monkeypatch.setattr(constants, name, value)


def _localhost_is_loopback() -> bool:
    try:
        return all(info[4][0] == "127.0.0.1" for info in socket.getaddrinfo("localhost", 80, socket.AF_INET))
    except OSError:
        return False


REPO = r"(?P<repo>[\w.-]+/[\w.-]+)"
ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (m, re.compile(p), name)
    for m, p, name in [
        ("GET", r"/api/whoami-v2", "whoami"),
        ("POST", r"/api/validate-yaml", "validate_yaml"),
        ("POST", r"/api/repos/create", "create_repo"),
        ("POST", rf"/api/models/{REPO}/preupload/(?P<rev>[^/]+)", "preupload"),
        ("POST", rf"/api/models/{REPO}/commit/(?P<rev>[^/]+)", "commit"),
        ("POST", rf"/api/models/{REPO}/branch/(?P<rev>[^/]+)", "create_branch"),
        ("GET", rf"/api/models/{REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", "tree"),
        ("GET", rf"/api/models/{REPO}(?:/revision/(?P<rev>[^/]+))?", "model_info"),
        ("POST", rf"/{REPO}\.git/info/lfs/objects/batch", "lfs_batch"),
        ("POST", rf"/{REPO}\.git/info/lfs/objects/verify", "lfs_verify"),
        ("PUT", r"/lfs-upload/(?P<oid>[0-9a-f]{64})", "lfs_put"),
        ("GET", r"/lfs-cdn/(?P<oid>[0-9a-f]{64})", "cdn"),
        ("GET", rf"/{REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
    ]
]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "earshot-test-hub/1"

    def setup(self) -> None:
        super().setup()
        with self.hub.lock:
            self.hub.connections.add(self.connection)

    def finish(self) -> None:
        with self.hub.lock:
            self.hub.connections.discard(self.connection)
        super().finish()

    @property
    def hub(self) -> HubServer:
        return self.server.hub  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch(self.command)

    do_HEAD = do_POST = do_PUT = do_GET

    # ---- plumbing ----------------------------------------------------------------------------------
    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        headers = {
            "X-Request-Id": secrets.token_hex(6),
            "Content-Type": "application/json",
            **(headers or {}),
        }
        for k, v in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        path, query = split.path, parse_qs(split.query)
        self.hub.requests.append((method, path))
        body = self._body() if method in ("POST", "PUT") else b""
        try:
            for m, pattern, name in ROUTES:
                match = pattern.fullmatch(path)
                if match and (m == method or (m == "GET" and method == "HEAD")):
                    params = {k: unquote(v) if v is not None else None for k, v in match.groupdict().items()}
                    signed = name in ("lfs_put", "cdn")  # pre-signed URLs: no token, like S3
                    with self.hub.lock:
                        user = None if signed else self.hub.user_for(self.headers.get("Authorization"))
                        getattr(self, f"_{name}")(user=user, query=query, body=body, **params)
                    return
            raise HubHTTPError(404, f"Not found: {method} {path}")
        except HubHTTPError as e:
            headers = {
                "X-Error-Message": e.message,
                **({"X-Error-Code": e.code} if e.code else {}),
                **e.headers,
            }
            self._json({"error": e.message, **e.body}, e.status, headers)
        except Exception as e:  # a bug here: answer it rather than drop the connection
            self._json({"error": f"test hub failed: {e!r}"}, 500)

    # ---- account and repos ------------------------------------------------------------------------
    def _whoami(self, user: str | None, **_: Any) -> None:
        if user is None:
            raise HubHTTPError(401, "Invalid credentials in Authorization header")
        self._json(
            {
                "type": "user",
                "name": user,
                "fullname": user,
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
            }
        )

    def _validate_yaml(self, body: bytes, **_: Any) -> None:
        content = json.loads(body)["content"]
        match = re.match(r"^---\n(.*?)\n---\n", content, re.DOTALL)
        try:
            meta = yaml.safe_load(match.group(1)) if match else {}
        except yaml.YAMLError as e:
            self._json({"errors": [{"message": f"Invalid YAML: {e}"}], "warnings": []}, 400)
            return
        warnings = [] if meta else [{"message": "empty or missing yaml metadata in repo card"}]
        self._json({"errors": [], "warnings": warnings})

    def _create_repo(self, user: str | None, body: bytes, **_: Any) -> None:
        payload = json.loads(body)
        if user is None:
            raise HubHTTPError(401, "You must be authenticated to create a repo")
        if payload.get("type", "model") != "model":
            raise HubHTTPError(400, "This test hub only hosts model repos")
        namespace = payload.get("organization") or user
        if namespace != user:
            raise HubHTTPError(
                403, f"You don't have the rights to create a model under the namespace {namespace}"
            )
        repo_id = f"{namespace}/{payload['name']}"
        url = f"{self.hub.url}/{repo_id}"
        if repo_id in self.hub.repos:
            raise HubHTTPError(409, "You already created this model repo", url=url)  # the client reads `url`
        repo = Repo(repo_id, user, payload.get("visibility", "public") == "private", _now())
        attributes = GITATTRIBUTES.encode()
        first = self.hub.new_commit(
            repo, None, {".gitattributes": RepoFile(attributes, len(attributes))}, "initial"
        )
        repo.branches["main"] = first.oid
        self.hub.repos[repo_id] = repo
        self._json({"url": url, "name": repo_id, "id": secrets.token_hex(12)})

    def _create_branch(self, user: str | None, repo: str, rev: str, body: bytes, **_: Any) -> None:
        r = self.hub.writable(repo, user)
        if rev in r.branches:
            raise HubHTTPError(409, f"Reference refs/heads/{rev} already exists")
        start = json.loads(body or b"{}").get("startingPoint") or "main"
        r.branches[rev] = r.resolve(start).oid
        self._json({})

    def _model_info(self, user: str | None, repo: str, rev: str | None, **_: Any) -> None:
        r = self.hub.readable(repo, user)
        commit = r.resolve(rev or "main")
        self._json(
            {
                "_id": hashlib.md5(repo.encode()).hexdigest()[:24],
                "id": repo,
                "modelId": repo,
                "author": r.owner,
                "sha": commit.oid,
                "lastModified": commit.date,
                "createdAt": r.created,
                "private": r.private,
                "disabled": False,
                "gated": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": [{"rfilename": p} for p in sorted(commit.files)],
            }
        )

    def _tree(self, user: str | None, repo: str, rev: str, path: str | None, query: dict, **_: Any) -> None:
        commit = self.hub.readable(repo, user).resolve(rev)
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        prefix = (path or "").strip("/")
        files = {p: f for p, f in sorted(commit.files.items()) if not prefix or p.startswith(prefix + "/")}
        if prefix and not files:
            raise HubHTTPError(404, f"{prefix} does not exist on {rev}", "EntryNotFound")
        dirs = {p.rsplit("/", k)[0] for p in files for k in range(1, p.count("/") + 1)}
        dirs = {d for d in dirs if not prefix or d.startswith(prefix + "/")}

        def shown(p: str) -> bool:
            return recursive or p.rpartition("/")[0] == prefix

        out: list[dict[str, Any]] = [
            {"type": "directory", "oid": git_blob_oid(d.encode()), "size": 0, "path": d}
            for d in sorted(dirs)
            if shown(d)
        ]
        for p, f in files.items():
            if shown(p):
                out.append({"type": "file", "oid": f.blob_oid, "size": f.size, "path": p})
                if f.lfs_sha256:
                    out[-1]["lfs"] = {
                        "oid": f.lfs_sha256,
                        "size": f.size,
                        "pointerSize": len(lfs_pointer(f.lfs_sha256, f.size)),
                    }
        self._json(out)

    # ---- upload: preupload, LFS batch/PUT/verify, commit ---------------------------------------
    def _preupload(self, user: str | None, repo: str, rev: str, body: bytes, **_: Any) -> None:
        commit = self.hub.writable(repo, user).resolve(rev)
        answer = []
        for f in json.loads(body)["files"]:
            mode = self.hub.upload_mode(f["path"], f["size"], base64.b64decode(f["sample"]))
            old = commit.files.get(f["path"])
            oid = None
            if old is not None:
                oid = old.lfs_sha256 if mode == "lfs" else (old.blob_oid if old.lfs_sha256 is None else None)
            answer.append({"path": f["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        self._json({"files": answer, "commitOid": commit.oid})

    def _lfs_batch(self, user: str | None, repo: str, body: bytes, **_: Any) -> None:
        self.hub.writable(repo, user)
        payload = json.loads(body)
        if payload.get("operation") != "upload" or "basic" not in payload.get("transfers", ["basic"]):
            raise HubHTTPError(400, "Only basic LFS uploads are supported")
        objects = []
        for obj in payload["objects"]:
            oid, size = obj["oid"], obj["size"]
            item: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if self.hub.lfs_objects.get(oid) is None:  # already stored → no actions, the client skips it
                sig = self.hub.sign(f"put:{oid}:{size}")
                item["actions"] = {
                    "upload": {
                        "href": f"{self.hub.url}/lfs-upload/{oid}?size={size}&sig={sig}",
                        "expires_in": 900,
                    },
                    "verify": {"href": f"{self.hub.url}/{repo}.git/info/lfs/objects/verify"},
                }
            objects.append(item)
        self._json(
            {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
            headers={"Content-Type": "application/vnd.git-lfs+json"},
        )

    def _lfs_put(self, oid: str, query: dict, body: bytes, **_: Any) -> None:
        size = int(query.get("size", ["-1"])[0])
        self.hub.check_signature(f"put:{oid}:{size}", query)
        if len(body) != size or hashlib.sha256(body).hexdigest() != oid:
            raise HubHTTPError(400, "Uploaded content does not match its oid/size")
        self.hub.lfs_objects[oid] = body
        self._send(200, b"", {"ETag": f'"{hashlib.md5(body).hexdigest()}"'})

    def _lfs_verify(self, user: str | None, repo: str, body: bytes, **_: Any) -> None:
        self.hub.writable(repo, user)
        obj = json.loads(body)
        data = self.hub.lfs_objects.get(obj["oid"])
        if data is None or len(data) != obj["size"]:
            raise HubHTTPError(404, f"LFS object {obj['oid']} not found")
        self._json({"success": True})

    def _commit(self, user: str | None, repo: str, rev: str, query: dict, body: bytes, **_: Any) -> None:
        r = self.hub.writable(repo, user)
        if query.get("create_pr"):
            raise HubHTTPError(400, "Pull requests are not supported by this test hub")
        if rev not in r.branches:
            raise HubHTTPError(404, f"Invalid rev id: {rev} (commits go to a branch)", "RevisionNotFound")
        parent = r.resolve(rev)
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubHTTPError(400, "The first NDJSON line must be the commit header")
        header = lines[0]["value"]
        if header.get("parentCommit") and not parent.oid.startswith(header["parentCommit"]):
            raise HubHTTPError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(parent.files)
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            if key == "file":
                data = base64.b64decode(value["content"])
                files[value["path"]] = RepoFile(data, len(data))
            elif key == "lfsFile":
                stored = self.hub.lfs_objects.get(value["oid"])
                if stored is None:
                    raise HubHTTPError(422, f"LFS file {value['path']} ({value['oid']}) was not uploaded")
                files[value["path"]] = RepoFile(None, len(stored), value["oid"])
            elif key == "deletedFile":
                files.pop(value["path"], None)
            elif key == "deletedFolder":
                folder = value["path"].rstrip("/") + "/"
                files = {p: f for p, f in files.items() if not p.startswith(folder)}
            else:
                raise HubHTTPError(400, f"Unknown commit operation {key!r}")
        commit = self.hub.new_commit(r, parent, files, header.get("summary", ""))
        r.branches[rev] = commit.oid
        self._json(
            {
                "success": True,
                "commitOid": commit.oid,
                "commitUrl": f"{self.hub.url}/{repo}/commit/{commit.oid}",
                "hookOutput": "",
            }
        )

    # ---- download ----------------------------------------------------------------------------------
    def _resolve(self, user: str | None, repo: str, rev: str, path: str, **_: Any) -> None:
        commit = self.hub.readable(repo, user).resolve(rev)
        f = commit.files.get(path)
        if f is None:
            raise HubHTTPError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.oid})
        headers = {
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{f.blob_oid}"',
            "Content-Type": "application/octet-stream",
        }
        if f.lfs_sha256 is None:
            self._send(200, f.data or b"", headers)
            return
        headers.update({"X-Linked-Etag": f'"{f.lfs_sha256}"', "X-Linked-Size": str(f.size)})
        if self.hub.cdn_url == self.hub.url:  # no second origin: serve the LFS content inline
            self._send(200, self.hub.lfs_objects[f.lfs_sha256], headers)
            return
        sig = self.hub.sign(f"get:{f.lfs_sha256}")
        headers["Location"] = (
            f"{self.hub.cdn_url}/lfs-cdn/{f.lfs_sha256}?sig={sig}&name={quote(path.split('/')[-1])}"
        )
        self._send(302, b"", headers)

    def _cdn(self, oid: str, query: dict, **_: Any) -> None:
        self.hub.check_signature(f"get:{oid}", query)
        if self.headers.get("Authorization"):
            raise HubHTTPError(400, "The CDN must not receive a Hub token")
        name = query.get("name", [oid])[0]
        self._send(
            200,
            self.hub.lfs_objects[oid],
            {
                "ETag": f'"{oid}"',
                "Content-Type": "application/octet-stream",
                "Content-Disposition": f'attachment; filename="{name}"',
            },
        )
