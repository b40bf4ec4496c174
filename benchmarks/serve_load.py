"""Load test of `symderive serve`: concurrent students checking answers against the local server.

Starts the real server (127.0.0.1, a free port) over problems/hw5-written.yaml, then
CLIENTS threads post ANSWERS answers in all (right, wrong and unreadable ones, each
distinct so nothing is served from a cache) to /api/check, and reports throughput,
median and p95 latency and errors (a non-200 reply, or a verdict of error or timeout).
Bounded: at most ANSWERS requests and LIMIT_SECONDS of wall time. Exit status 1 on any
error. Writes the figures to benchmarks/serve_load.txt.

Run:  python benchmarks/serve_load.py [--clients 20] [--answers 500]
"""
import argparse
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT_SECONDS = 600
TEMPLATES = [("hw5-p2a", "280 + {k} - {k}", "correct"), ("hw5-p2a", "{k} + 1", "incorrect"),
             ("hw5-p2b", r"\mathbb{{R}}^{{126 \times 126 \times {k}}}", None),
             ("hw5-p2c", "{k}", None), ("hw5-p2a", r"\frac{{{k}}}{{", "unparseable")]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port):
    proc = subprocess.Popen([sys.executable, "-m", "symderive", "serve", str(ROOT / "problems" / "hw5-written.yaml"),
                             "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
            return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("the server did not start")


def post(url, qid, latex):
    body = json.dumps({"problem": 0, "question": qid, "answer": latex}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as reply:
        return reply.status, json.loads(reply.read())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--answers", type=int, default=500)
    args = parser.parse_args()
    port = free_port()
    proc = start_server(port)
    url = f"http://127.0.0.1:{port}/api/check"
    work = list(range(args.answers))
    lock = threading.Lock()
    latencies, errors, verdicts = [], [], {}
    stop_at = time.monotonic() + LIMIT_SECONDS

    def client():
        while time.monotonic() < stop_at:
            with lock:
                if not work:
                    return
                n = work.pop()
            qid, template, expected = TEMPLATES[n % len(TEMPLATES)]
            latex = template.format(k=n + 2)
            start = time.perf_counter()
            try:
                status, reply = post(url, qid, latex)
                ok = status == 200 and reply["verdict"] not in ("error", "timeout") \
                    and (expected is None or reply["verdict"] == expected)
                outcome = reply["verdict"] if status == 200 else f"HTTP {status}"
            except Exception as exc:
                ok, outcome = False, f"{type(exc).__name__}: {exc}"
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                verdicts[outcome] = verdicts.get(outcome, 0) + 1
                if not ok:
                    errors.append((qid, latex, outcome))

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        wall = time.perf_counter() - start
        proc.terminate()
        proc.wait(timeout=10)
    latencies.sort()
    p95 = latencies[max(0, int(round(0.95 * len(latencies))) - 1)]
    lines = [f"symderive serve load test: {args.clients} concurrent clients, {len(latencies)} answers "
             f"(of {args.answers}) to problems/hw5-written.yaml, 2 checking workers",
             f"throughput {len(latencies) / wall:.1f} answers/s over {wall:.1f} s",
             f"latency median {statistics.median(latencies) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
             f"max {latencies[-1] * 1000:.0f} ms",
             f"verdicts {json.dumps(verdicts, sort_keys=True)}",
             f"errors {len(errors)}" + (f" (first: {errors[0]})" if errors else "")]
    print("\n".join(lines))
    (ROOT / "benchmarks" / "serve_load.txt").write_text("\n".join(lines) + "\n")
    return 1 if errors or len(latencies) < args.answers else 0


if __name__ == "__main__":
    sys.exit(main())
