"""A webhook receiver for Roster's tests: every delivery is verified by the Standard
Webhooks reference library (`standardwebhooks`), not by Roster's code.

Prints `PORT <n>` on its first line, then serves on 127.0.0.1:
  POST /__test/secret   body: the endpoint's `whsec_…` secret (set before deliveries)
  GET  /__test/deliveries  → JSON list of {"id", "type", "verified", "error"} in arrival order
  POST /hook            a delivery: 204 if it verifies, 401 if not (recorded either way)
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

state = {"secret": None, "deliveries": []}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _reply(self, status, body=b""):
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/__test/deliveries":
            with lock:
                body = json.dumps(state["deliveries"]).encode()
            return self._reply(200, body)
        self._reply(404)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.path == "/__test/secret":
            with lock:
                state["secret"] = body.decode()
            return self._reply(204)
        if self.path != "/hook":
            return self._reply(404)
        headers = {k.lower(): v for k, v in self.headers.items()}
        record = {"id": headers.get("webhook-id"), "verified": False, "error": None, "type": None}
        try:
            payload = Webhook(state["secret"]).verify(body, headers)
            record["verified"] = True
            record["type"] = payload.get("type")
        except (WebhookVerificationError, TypeError, ValueError) as e:
            record["error"] = str(e)
        with lock:
            state["deliveries"].append(record)
        self._reply(204 if record["verified"] else 401)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"PORT {server.server_address[1]}", flush=True)
server.serve_forever()
