"""POST /v1/files + PUT + POST /v1/files/{id}/complete, CONCURRENCY flows at once.

Each worker thread keeps its own keep-alive connection and runs whole flows
for DURATION seconds; it reports the flows per second and the latency of each
step. Arguments: base URL, access token, concurrency, duration in seconds.
"""

import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse

BASE, TOKEN = sys.argv[1], sys.argv[2]
CONCURRENCY, DURATION = int(sys.argv[3]), float(sys.argv[4])
PNG = (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89"
       + b"\0" * 4064)  # 4 KiB
host = urllib.parse.urlsplit(BASE).netloc
steps = {"create": [], "put": [], "complete": []}
flows = []
errors = []
lock = threading.Lock()


def timed(conn, method, path, body, headers):
    started = time.perf_counter()
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    return response.status, data, time.perf_counter() - started


def worker(deadline):
    conn = http.client.HTTPConnection(host)
    auth = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
    local = {"create": [], "put": [], "complete": []}
    done = 0
    while time.perf_counter() < deadline:
        body = json.dumps({"filename": "a.png", "content_type": "image/png",
                           "size_bytes": len(PNG), "purpose": "avatar"})
        status, data, took = timed(conn, "POST", "/v1/files", body, auth)
        if status != 201:
            errors.append(("create", status, data[:200]))
            continue
        local["create"].append(took)
        created = json.loads(data)
        url = urllib.parse.urlsplit(created["upload"]["url"])
        path = url.path + "?" + url.query
        status, data, took = timed(conn, "PUT", path, PNG, created["upload"]["headers"])
        if status != 200:
            errors.append(("put", status, data[:200]))
            continue
        local["put"].append(took)
        status, data, took = timed(conn, "POST", f"/v1/files/{created['id']}/complete", b"{}", auth)
        if status != 200:
            errors.append(("complete", status, data[:200]))
            continue
        local["complete"].append(took)
        done += 1
    with lock:
        for key, values in local.items():
            steps[key].extend(values)
        flows.append(done)


deadline = time.perf_counter() + DURATION
threads = [threading.Thread(target=worker, args=(deadline,)) for _ in range(CONCURRENCY)]
for t in threads:
    t.start()
for t in threads:
    t.join()

total = sum(flows)
print(f"flows: {total} in {DURATION:.0f} s = {total / DURATION:.1f} flows/s "
      f"({CONCURRENCY} at once), errors: {len(errors)}")
for step, values in steps.items():
    if values:
        values.sort()
        p = lambda q: values[min(len(values) - 1, int(q * len(values)))] * 1000
        print(f"  {step:9} median {statistics.median(values) * 1000:6.2f} ms  "
              f"p90 {p(0.90):6.2f} ms  p99 {p(0.99):6.2f} ms")
for error in errors[:5]:
    print("  error:", error)
