"""A stand-in for the Hugging Face Hub on loopback (``HF_ENDPOINT``): just enough of its HTTP API for the real
``huggingface_hub`` client's create_repo, upload_folder (files sent in the commit, as the hub asks for small
ones) and snapshot_download of a repo. It keeps files in memory and logs each request with its token."""

import base64
import hashlib
import http.server
import json
import re
import threading
from urllib.parse import unquote, urlparse

KINDS = "(datasets|models|spaces)"


class Hub:
    def __init__(self):
        self.repos: dict[tuple[str, str], dict[str, bytes]] = {}  # (type, id) -> path -> content
        self.commits: dict[tuple[str, str], str] = {}
        self.log: list[tuple[str, str, str | None]] = []  # method, path, Authorization
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def send(self, code, body=b"", headers=None, ctype="application/json"):
                if isinstance(body, (dict, list)):
                    body = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def handle_any(self):
                hub.log.append((self.command, self.path, self.headers.get("Authorization")))
                (hub.post if self.command == "POST" else hub.get)(self)

            do_POST = do_GET = do_HEAD = handle_any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def close(self):
        self.server.shutdown()

    def post(self, h):
        path, body = urlparse(h.path).path, h.body()
        if path == "/api/repos/create":
            req = json.loads(body)
            name = f"{req['organization']}/{req['name']}" if req.get("organization") else req["name"]
            self.repos.setdefault((req.get("type") or "model", name), {})
            return h.send(200, {"url": f"{self.url}/{name}", "name": name})
        if m := re.match(rf"/api/{KINDS}/(.+?)/preupload/(.+)", path):
            files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                     for f in json.loads(body)["files"]]
            return h.send(200, {"files": files, "commitOid": "0" * 40})
        if m := re.match(rf"/api/{KINDS}/(.+?)/commit/(.+)", path):
            key = (m.group(1)[:-1], m.group(2))
            files = self.repos.setdefault(key, {})
            for line in body.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                elif item["key"] == "deletedFile":
                    files.pop(item["value"]["path"], None)
            listing = sorted((k, hashlib.sha1(v).hexdigest()) for k, v in files.items())
            oid = self.commits[key] = hashlib.sha1(json.dumps(listing).encode()).hexdigest()
            return h.send(200, {"commitUrl": f"{self.url}/{key[1]}/commit/{oid}", "commitOid": oid,
                                "pullRequestUrl": None})
        return h.send(404, {"error": f"no {path}"})

    def get(self, h):
        path = unquote(urlparse(h.path).path)
        if m := re.match(rf"/api/{KINDS}/(.+?)/revision/(.+)", path):
            key = (m.group(1)[:-1], m.group(2))
            if key not in self.repos:
                return h.send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
            return h.send(200, {"id": key[1], "sha": self.commits.get(key, "0" * 40),
                                "siblings": [{"rfilename": p} for p in sorted(self.repos[key])]})
        if m := re.match(rf"/api/{KINDS}/(.+?)/tree/([^/]+)/?(.*)", path):
            files = self.repos.get((m.group(1)[:-1], m.group(2)), {})
            return h.send(200, [{"type": "file", "path": p, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                                for p, b in sorted(files.items())])
        if m := re.match(r"/(datasets/|spaces/)?(.+?)/resolve/([^/]+)/(.+)", path):
            key = ((m.group(1) or "models/")[:-2], m.group(2))
            data = self.repos.get(key, {}).get(m.group(4))
            if data is None:
                return h.send(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
            headers = {"X-Repo-Commit": self.commits.get(key, "0" * 40), "ETag": f'"{hashlib.sha1(data).hexdigest()}"'}
            return h.send(200, data, headers, "application/octet-stream")
        return h.send(404, {"error": f"no {path}"})
