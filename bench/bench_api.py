"""API search latency under concurrent load: GET /api/v1/search over loopback, encoding included.

Process one is the web server (``manage.py runserver``, what ``make demo`` serves; started here
unless ``--url`` names a running one), process two is this script: it sends the demo README's
queries in all four languages as the five demo users, from 1, 2, 4 and 8 concurrent clients, and
reports what a client sees (end-to-end latency) and what the server measured (``took_ms``: query
encoding, both index legs, fusion and the database reads; no HTTP, serialization or logging).

Needs the demo data (``manage.py migrate && manage.py demo_setup``) and the real model. Every
loop is bounded by a request count and a deadline, and only 127.0.0.1 is contacted.

    .venv/bin/python bench/bench_api.py [--requests 200] [--concurrency 1,2,4,8] [--url http://127.0.0.1:8123]
"""
import argparse
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
USERS = ("alice", "bob", "carol", "dave", "erin")
QUERIES = (
    "How do I connect to the VPN from home?",
    "VPN 连接失败 E-120",
    "パスワードを忘れた",
    "회의실 예약 자동 취소",
    "报销 期限",
    "coffee machine error E4",
    "Berlin public holidays 2026",
    "salary band L3 Tokyo",
    "北极星计划 组织调整",
    "육아휴직 회사 지원",
    "promotion nomination deadline",
    "部署 回滚",
    "배포 장애 원인",
    "オンコール 手当",
    "robot CA rotation",
    "Osaka office",
)
DEADLINE_SECONDS = 600


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(*args: str, env: dict | None = None) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args], capture_output=True, text=True, env=env, check=True
    )
    return result.stdout


def tokens() -> dict[str, str]:
    """An API token per demo user (created if missing; the same command an admin would use)."""
    found = {}
    for user in USERS:
        output = manage("drf_create_token", user)
        match = re.search(r"token ([0-9a-f]{40})", output)
        if not match:
            raise SystemExit(f"no token for {user}: {output!r} (run manage.py demo_setup first)")
        found[user] = match.group(1)
    return found


def start_server(port: int) -> subprocess.Popen:
    # The development server `make serve` runs: DEBUG on (plain HTTP on loopback, a per-process key).
    env = {**os.environ, "KBSEARCH_DEBUG": "1", "KBSEARCH_RATE_SEARCH": "", "KBSEARCH_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runserver", "--noreload", f"127.0.0.1:{port}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("the server did not start within 120 s")


class Client:
    """A connection per request, as curl or a simple script makes them.

    Not keep-alive: runserver writes headers and body in separate packets, and on a reused
    connection Nagle's algorithm holds the body until the client's delayed ACK (40 ms on Linux),
    which would measure a quirk of the development server rather than kbsearch.
    """

    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit("this benchmark only talks to loopback addresses")
        self.host, self.port = parts.hostname, parts.port
        self.headers = {"Authorization": f"Token {token}", "Accept": "application/json", "Connection": "close"}

    def search(self, query: str) -> tuple[float, float]:
        started = time.perf_counter()
        connection = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            connection.request("GET", "/api/v1/search?" + urlencode({"q": query}), headers=self.headers)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")
        return elapsed, json.loads(body)["took_ms"]


def run_level(url: str, keys: dict[str, str], concurrency: int, requests: int) -> dict:
    client_ms: list[float] = []
    server_ms: list[float] = []
    lock = threading.Lock()
    counter = iter(range(requests))
    deadline = time.monotonic() + DEADLINE_SECONDS

    def worker(index: int) -> None:
        client = Client(url, keys[USERS[index % len(USERS)]])
        for n in counter:  # shared iterator: exactly `requests` requests in all
            if time.monotonic() > deadline:
                return
            elapsed, took = client.search(QUERIES[n % len(QUERIES)])
            with lock:
                client_ms.append(elapsed)
                server_ms.append(took)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "requests": len(client_ms),
        "throughput": len(client_ms) / wall,
        "p50": statistics.median(client_ms),
        "p95": percentile(client_ms, 0.95),
        "server_p50": statistics.median(server_ms),
        "server_p95": percentile(server_ms, 0.95),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server (loopback); default: start one on a free port")
    parser.add_argument("--requests", type=int, default=200, help="requests per concurrency level")
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    keys = tokens()
    server = None
    url = args.url
    if url is None:
        port = free_port()
        server = start_server(port)
        url = f"http://127.0.0.1:{port}"
    try:
        warm = Client(url, keys["alice"])
        for n in range(args.warmup):  # loads the model and fills caches before measuring
            warm.search(QUERIES[n % len(QUERIES)])
        rows = [run_level(url, keys, int(c), args.requests) for c in args.concurrency.split(",")]
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    print(f"{len(QUERIES)} queries x {len(USERS)} users, {args.requests} requests per level, {os.cpu_count()} cores\n")
    print("| clients | requests | req/s | p50 ms | p95 ms | server p50 ms | server p95 ms |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['concurrency']} | {row['requests']} | {row['throughput']:.1f} | {row['p50']:.1f} | "
            f"{row['p95']:.1f} | {row['server_p50']:.1f} | {row['server_p95']:.1f} |"
        )


if __name__ == "__main__":
    main()
