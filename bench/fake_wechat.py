#!/usr/bin/env python3
"""Minimal stand-in for api.weixin.qq.com, for bench/run.sh only.

Answers like WeChat does (HTTP 200, JSON body, Content-Type text/plain):
  GET  /sns/jscode2session   -> {"openid": "obench", "session_key": "x"} for any code
  POST /cgi-bin/stable_token -> a fixed access_token
Anything else gets errcode 40066 ("invalid url"), as WeChat answers a mistyped path.

Usage: fake_wechat.py PORT_FILE
Binds 127.0.0.1 on a free port and writes the port number to PORT_FILE once listening.
"""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self, payload):
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drain_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)

    def do_GET(self):
        path = urlsplit(self.path).path
        if path == "/sns/jscode2session":
            self._answer({"openid": "obench", "session_key": "x"})
        else:
            self._answer({"errcode": 40066, "errmsg": "invalid url"})

    def do_POST(self):
        self._drain_body()
        path = urlsplit(self.path).path
        if path == "/cgi-bin/stable_token":
            self._answer({"access_token": "bench_access_token", "expires_in": 7200})
        else:
            self._answer({"errcode": 40066, "errmsg": "invalid url"})

    def log_message(self, fmt, *args):  # keep the bench output quiet
        pass


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: fake_wechat.py PORT_FILE")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_file = sys.argv[1]
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, port_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
