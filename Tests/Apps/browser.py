#!/usr/bin/env python3
"""A headless Chromium driven over the DevTools protocol, with the Python standard library only
(a minimal WebSocket client): the status page's browser tests and the latency benchmark use it.

    with Browser(out_dir) as b:
        b.goto(url); b.wait("document.querySelector('#token') !== null")
        b.type("#token", token); b.click("button[type=submit]")
        b.screenshot("services.png")

Chromium's own profile, cache and crash files go under a temporary directory removed at the end;
the process is started in its own process group and killed with it.
"""
import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request


class WebSocket:
    """RFC 6455, client side, text frames only: what the DevTools protocol needs."""

    def __init__(self, url):
        assert url.startswith("ws://")
        hostport, _, path = url[5:].partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise IOError("the DevTools socket closed during the handshake")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise IOError("DevTools refused the WebSocket: " + head.decode(errors="replace"))

    def send(self, text):
        data = text.encode()
        header = bytearray([0x81])
        n = len(data)
        if n < 126:
            header.append(0x80 | n)
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        header += mask
        self.sock.sendall(bytes(header) + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise IOError("the DevTools socket closed")
            buf += chunk
        return buf

    def recv(self):
        message = b""
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._exact(8))[0]
            payload = self._exact(n)
            opcode = b0 & 0x0F
            if opcode == 0x8:
                raise IOError("the DevTools socket closed")
            if opcode == 0x9:  # ping: answer, keep reading
                continue
            message += payload
            if b0 & 0x80:
                return message.decode()


class Browser:
    def __init__(self, out_dir, width=1280, height=900):
        self.out_dir = out_dir
        os.makedirs(out_dir, exist_ok=True)
        self.profile = tempfile.mkdtemp(prefix="setpoint-chromium-")
        binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
        if not binary:
            raise SystemExit("chromium is not installed (hack/test.sh installs Debian's chromium)")
        self.proc = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--metrics-recording-only", "--mute-audio",
             f"--window-size={width},{height}", f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(out_dir, "chromium.log"), "wb"), start_new_session=True)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.time() + 60
        while not (os.path.exists(port_file) and open(port_file).read().count("\n") >= 1):
            if self.proc.poll() is not None or time.time() > deadline:
                self.close()
                raise SystemExit("chromium did not start (see chromium.log)")
            time.sleep(0.05)
        port = int(open(port_file).read().split("\n")[0])
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        page = next(t for t in targets if t.get("type") == "page")
        self.ws = WebSocket(page["webSocketDebuggerUrl"])
        self.next_id = 0
        self.console = []
        self.call("Page.enable")
        self.call("Runtime.enable")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def call(self, method, **params):
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("method") == "Runtime.consoleAPICalled":
                self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in message["params"]["args"]))
            if message.get("method") == "Runtime.exceptionThrown":
                self.console.append("exception: " + json.dumps(message["params"]["exceptionDetails"])[:500])
            if message.get("id") == my_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def eval(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError("in the page: " + json.dumps(result["exceptionDetails"])[:800])
        return result["result"].get("value")

    def goto(self, url):
        self.call("Page.navigate", url=url)

    def wait(self, expression, timeout=30, what=None):
        """Waits until `expression` is truthy in the page (checked inside the page every 5 ms, and on every DOM change)."""
        script = ("new Promise((resolve) => { const end = Date.now() + %d; let done = false; const check = () => { if (done) return; let v = false; "
                  "try { v = !!(%s); } catch (e) {} if (v || Date.now() > end) { done = true; observer.disconnect(); resolve(v || false); } "
                  "else setTimeout(check, 5); }; const observer = new MutationObserver(check); "
                  "observer.observe(document, {subtree: true, childList: true, characterData: true, attributes: true}); check(); })"
                  % (int(timeout * 1000), expression))
        value = self.eval(script)
        if not value:
            self.screenshot("failure.png")
            raise AssertionError(f"timed out after {timeout}s waiting for {what or expression}; console: {self.console[-5:]}")
        return value

    def type(self, selector, text):
        self.eval("document.querySelector(%s).focus()" % json.dumps(selector))
        self.call("Input.insertText", text=text)

    def click(self, selector):
        self.eval("document.querySelector(%s).click()" % json.dumps(selector))

    def key(self, key, code=None, key_code=0):
        """A real key press on the focused element (Enter submits a form, activates a button)."""
        text = "\r" if key == "Enter" else (key if len(key) == 1 else "")
        self.call("Input.dispatchKeyEvent", type="keyDown", key=key, code=code or key, windowsVirtualKeyCode=key_code,
                  nativeVirtualKeyCode=key_code, text=text, unmodifiedText=text)
        self.call("Input.dispatchKeyEvent", type="keyUp", key=key, code=code or key, windowsVirtualKeyCode=key_code, nativeVirtualKeyCode=key_code)

    def screenshot(self, name):
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path = os.path.join(self.out_dir, name)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path
