#!/usr/bin/env python3
"""A small HTTP(S) server on 127.0.0.1 for the uri and get_url tests.

    python3 httpd.py PORT_FILE LOG_FILE ROOT [CERT KEY]

Binds a free port, writes it to PORT_FILE, and appends one line per
request to LOG_FILE ("METHOD PATH auth=yes|no").  Paths:
  /status/NNN          answers NNN with a short text body
  /json                a JSON document (Content-Type application/json)
  /redirect?to=PATH    302 to PATH
  /auth/USER/SHA       200 with JSON when Basic auth is USER and a password
                       whose sha256 hex is SHA (no password in a URL), else 401
  /flaky/KEY/N         503 for the first N requests of KEY, then 200 JSON
  /echo                JSON of the request: method, path, headers, body
  /files/NAME          the file ROOT/NAME (404 when missing)
  /slow                a body sent one byte a second (interrupt tests)
  /big                 2 MiB of text
"""
import base64
import hashlib
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs

PORT_FILE, LOG_FILE, ROOT = sys.argv[1], sys.argv[2], sys.argv[3]
counts = {}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send(self, code, body, ctype="text/plain", extra=None):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Test-Server", "cutover")
        # per-response values, as real servers send (Date comes with
        # send_response): they must not make a saved plan stale
        self.send_header("X-Request-Id", os.urandom(8).hex())
        self.send_header("Age", str(int(time.time()) % 1000))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlparse(self.path)
        with open(LOG_FILE, "a") as f:
            f.write("%s %s auth=%s\n" % (self.command, url.path,
                                         "yes" if self.headers.get("Authorization") else "no"))
        parts = url.path.strip("/").split("/")
        if parts[0] == "status" and len(parts) == 2:
            self.send(int(parts[1]), "status %s: the body says why\n" % parts[1])
        elif parts[0] == "json":
            self.send(200, json.dumps({"status": "ok", "n": 3, "items": ["a", "b"]}),
                      "application/json")
        elif parts[0] == "redirect":
            to = parse_qs(url.query).get("to", ["/json"])[0]
            self.send(302, "moved\n", extra={"Location": to})
        elif parts[0] == "auth" and len(parts) == 3:
            got = self.headers.get("Authorization") or ""
            ok = False
            if got.startswith("Basic "):
                user, _, pw = base64.b64decode(got[6:]).decode("utf-8", "replace").partition(":")
                ok = user == parts[1] and hashlib.sha256(pw.encode()).hexdigest() == parts[2]
            if ok:
                self.send(200, json.dumps({"user": parts[1]}), "application/json")
            else:
                self.send(401, "who are you?\n", extra={"WWW-Authenticate": 'Basic realm="test"'})
        elif parts[0] == "flaky" and len(parts) == 3:
            with lock:
                counts[parts[1]] = counts.get(parts[1], 0) + 1
                n = counts[parts[1]]
            if n <= int(parts[2]):
                self.send(503, "not yet (%d)\n" % n)
            else:
                self.send(200, json.dumps({"ready": True, "attempt": n}), "application/json")
        elif parts[0] == "echo":
            self.send(200, json.dumps({"method": self.command, "path": self.path,
                                       "headers": {k.lower(): v for k, v in self.headers.items()},
                                       "body": body.decode("utf-8", "replace")}),
                      "application/json")
        elif parts[0] == "files" and len(parts) == 2:
            path = os.path.join(ROOT, parts[1])
            if not os.path.isfile(path):
                self.send(404, "no such file\n")
            else:
                with open(path, "rb") as f:
                    self.send(200, f.read(), "application/octet-stream")
        elif parts[0] == "slow":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(1000):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(1)
        elif parts[0] == "big":
            self.send(200, "0123456789abcdef" * (128 * 1024))
        else:
            self.send(404, "unknown path\n")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
if len(sys.argv) > 5:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[4], sys.argv[5])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
