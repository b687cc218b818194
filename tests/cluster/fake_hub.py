#!/usr/bin/env python3
"""A minimal Hugging Face hub for scripts/test-cluster: serves one file as
/OWNER/REPO/resolve/REVISION/PATH with the headers the hub sends (X-Repo-Commit, ETag = the
file's sha256 as for an LFS file, Content-Length), HEAD and GET (with Range), and counts the
GETs that sent the file's bytes, so the test can tell how many downloads a cluster made.

  fake_hub.py --bind ADDRESS --port-file FILE --file LOCAL_PATH --repo OWNER/REPO --path NAME
  GET /_stats -> {"content_gets": N, "heads": N}
Stops on SIGTERM. Only ever binds the address it is given (the Docker bridge of this machine).
"""
import argparse
import hashlib
import http.server
import json
import signal
import sys
import threading

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--path", required=True)
    args = ap.parse_args()
    data = open(args.file, "rb").read()
    sha = hashlib.sha256(data).hexdigest()
    lock = threading.Lock()
    stats = {"content_gets": 0, "heads": 0}
    prefix = f"/{args.repo}/resolve/"

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            sys.stderr.write("fake_hub: " + (fmt % a) + "\n")

        def target_ok(self):
            if not self.path.startswith(prefix):
                return False
            rev, _, name = self.path[len(prefix):].partition("/")
            return name == args.path and rev in ("main", COMMIT)

        def headers_for(self, length, status):
            self.send_response(status)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{sha}"')
            self.send_header("X-Linked-Etag", f'"{sha}"')
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(length))
            self.send_header("Connection", "close")
            self.end_headers()

        def do_HEAD(self):
            if not self.target_ok():
                return self.not_found()
            with lock:
                stats["heads"] += 1
            self.headers_for(len(data), 200)

        def do_GET(self):
            if self.path == "/_stats":
                body = json.dumps(stats).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                return
            if not self.target_ok():
                return self.not_found()
            start = 0
            rng = self.headers.get("Range", "")
            if rng.startswith("bytes=") and rng[6:].split("-")[0].isdigit():
                start = min(int(rng[6:].split("-")[0]), len(data))
            with lock:
                stats["content_gets"] += 1
            self.headers_for(len(data) - start, 206 if start else 200)
            self.wfile.write(data[start:])

        def not_found(self):
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()

    server = http.server.ThreadingHTTPServer((args.bind, 0), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.replace(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
