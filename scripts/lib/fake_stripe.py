"""A minimal stand-in for Stripe's API, for scripts/security-scan only.

    python3 scripts/lib/fake_stripe.py PORT_FILE

Listens on 127.0.0.1 (a free port, written to PORT_FILE) and answers the
calls rabt makes (customers, Checkout and billing-portal sessions, prices,
subscriptions) with small objects of Stripe's shapes, so that the scan
reaches the billing handlers instead of their 503 "not configured". The
tests use a fuller fake in Rust (crates/rabt/tests/api/helpers/stripe.rs).
"""

import itertools
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

counter = itertools.count(1)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        n = next(counter)
        if self.path == "/v1/customers":
            self.answer(200, {"id": f"cus_scan{n}", "object": "customer"})
        elif self.path == "/v1/checkout/sessions":
            self.answer(200, {"id": f"cs_test_scan{n}", "object": "checkout.session",
                              "mode": "subscription",
                              "url": f"https://checkout.stripe.com/c/pay/cs_test_scan{n}"})
        elif self.path == "/v1/billing_portal/sessions":
            self.answer(200, {"id": f"bps_scan{n}", "object": "billing_portal.session",
                              "url": f"https://billing.stripe.com/p/session/scan{n}"})
        else:
            self.answer(404, {"error": {"type": "invalid_request_error",
                                        "message": "Unrecognized request URL"}})

    def do_GET(self):
        if self.path.startswith("/v1/prices/"):
            self.answer(200, {"id": self.path.rsplit("/", 1)[1], "object": "price",
                              "currency": "usd", "unit_amount": 1500,
                              "recurring": {"interval": "month"}})
        else:
            self.answer(404, {"error": {"type": "invalid_request_error",
                                        "message": "No such object"}})


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[1], "w", encoding="utf-8") as port_file:
        port_file.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
