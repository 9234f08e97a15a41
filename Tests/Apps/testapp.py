#!/usr/bin/env python3
"""A small app for the proxy tests (standard library only).

  --port N | --unix PATH   where to listen (default: $PORT or 8000)
  --name NAME              returned by /work and /name
  --delay-ms N             how long /work takes

Endpoints: GET /name, GET /work, GET /delay?ms=N, GET /headers (the request as JSON), GET /env?name=NAME (a variable's value),
POST /echo, GET /stream?n=N&ms=M (chunked), GET /ws (WebSocket echo), and an OpenAI-compatible
subset under /v1: GET models, POST chat/completions (with "stream": true as SSE), completions,
embeddings. It dies at once on SIGTERM (the default), like an app with no graceful shutdown.
"""
import argparse
import base64
import hashlib
import json
import os
import socket
import socketserver
import struct
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

ARGS = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.command, self.path))

    def send_body(self, status, body, content_type="text/plain"):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        url = urlparse(self.path)
        q = parse_qs(url.query)
        if url.path == "/ws" and self.headers.get("Upgrade", "").lower() == "websocket":
            return self.websocket()
        if url.path == "/env":
            name = parse_qs(url.query).get("name", [""])[0]
            return self.send_body(200 if name in os.environ else 404, os.environ.get(name, "unset"))
        if url.path == "/name":
            return self.send_body(200, ARGS.name)
        if url.path == "/work":
            time.sleep(ARGS.delay_ms / 1000)
            return self.send_body(200, ARGS.name)
        if url.path == "/delay":
            time.sleep(int(q.get("ms", ["100"])[0]) / 1000)
            return self.send_body(200, ARGS.name)
        if url.path.endswith("/headers"):
            return self.send_body(200, json.dumps({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}),
                                  "application/json")
        if url.path == "/stream":
            n, ms = int(q.get("n", ["3"])[0]), int(q.get("ms", ["100"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(n):
                self.chunk(b"part %d\n" % i)
                time.sleep(ms / 1000)
            self.wfile.write(b"0\r\n\r\n")
            return
        if url.path == "/v1/models":
            return self.send_body(200, json.dumps({"object": "list", "data": [{"id": ARGS.name, "object": "model"}]}), "application/json")
        self.send_body(200 if url.path == "/" else 404, "%s %s\n" % (ARGS.name, url.path))

    def do_POST(self):
        url = urlparse(self.path)
        body = self.read_body()
        if url.path == "/echo":
            return self.send_body(200, body, self.headers.get("Content-Type", "application/octet-stream"))
        if url.path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
            request = json.loads(body or b"{}")
            if url.path == "/v1/embeddings":
                return self.send_body(200, json.dumps({"object": "list", "model": request.get("model"), "served_by": ARGS.name,
                                                       "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}]}),
                                      "application/json")
            words = ["Hello", " from", " " + ARGS.name]
            if request.get("stream"):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for w in words:
                    event = {"id": "c1", "object": "chat.completion.chunk", "model": request.get("model"),
                             "choices": [{"index": 0, "delta": {"content": w}}]}
                    self.chunk(b"data: " + json.dumps(event).encode() + b"\n\n")
                    time.sleep(0.2)
                self.chunk(b"data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")
                return
            return self.send_body(200, json.dumps({"id": "c1", "object": "chat.completion", "model": request.get("model"),
                                                   "served_by": ARGS.name, "path": url.path,
                                                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(words)}}]}),
                                  "application/json")
        self.send_body(404, "not found")

    def websocket(self):
        key = self.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                length = struct.unpack(">H", self.rfile.read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self.rfile.read(8))[0]
            mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(length)))
            if opcode == 8:
                self.wfile.write(b"\x88\x00")
                self.wfile.flush()
                return
            reply = payload if opcode != 1 else ("echo: " + payload.decode()).encode()
            frame = bytes([0x80 | opcode])
            frame += bytes([len(reply)]) if len(reply) < 126 else b"\x7e" + struct.pack(">H", len(reply))
            self.wfile.write(frame + reply)
            self.wfile.flush()


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        request, _ = super().get_request()
        return request, ("127.0.0.1", 0)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    p.add_argument("--unix")
    p.add_argument("--name", default=os.environ.get("APP_NAME", "app"))
    p.add_argument("--delay-ms", type=int, default=int(os.environ.get("DELAY_MS", "0")))
    ARGS = p.parse_args()
    if ARGS.unix:
        if os.path.exists(ARGS.unix):
            os.unlink(ARGS.unix)
        server = UnixServer(ARGS.unix, Handler)
    else:
        ThreadingHTTPServer.daemon_threads = True
        ThreadingHTTPServer.request_queue_size = 128
        server = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    print("listening", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
