"""API search latency under concurrent load: GET /api/v1/search over loopback, encoding included.

The same load against each server in turn, in one run: ``runserver`` (what ``make serve`` and
``make demo`` run: DEBUG on, one thread per request) and ``gunicorn`` (``make serve-prod``:
production settings with DEBUG off, a secret key, HTTPS through the trusted proxy header, which
this script sends as a TLS-terminating proxy would; workers and threads from gunicorn.conf.py or
KBSEARCH_WEB_WORKERS/KBSEARCH_WEB_THREADS). Each is started here on a free port, unless ``--url``
names a running server. This script sends the demo README's queries in all four languages as the
five demo users, from 1, 2, 4 and 8 concurrent clients, and reports what a client sees
(end-to-end latency) and what the server measured (``took_ms``: query encoding, both index legs,
fusion and the database reads; no HTTP, serialization or logging), with the machine's load
average before each level (the machine may be shared), the CPU time the server's processes spent
per search (what bounds throughput on an idle machine: cores / CPU per search, whatever the load
was) and the server's memory (PSS of all its processes, so pages shared copy-on-write between
gunicorn workers count once).

``gunicorn-nocache`` is gunicorn with the query vector cache off (``KBSEARCH_QUERY_CACHE_SIZE=0``):
the 16 queries repeat, so with the cache on only the first of each is encoded. A gunicorn server
may name its shape, ``gunicorn:1x8`` (workers x threads; PyTorch threads per worker follow:
cores / workers) or ``gunicorn:2x4c4`` (and connections per worker), to compare shapes in one run. ``--before-tree``
runs the ``runserver`` rows from another checkout (the code before a change, e.g. from ``git
worktree add``), against the same database and index.

Needs the demo data (``manage.py migrate && manage.py demo_setup``) and the real model. Every
loop is bounded by a request count and a deadline, and only 127.0.0.1 is contacted.

    .venv/bin/python bench/bench_api.py [--requests 200] [--concurrency 1,4,8]
        [--servers runserver,gunicorn,gunicorn-nocache] [--before-tree DIR] [--url http://127.0.0.1:8123]
        [--paced 8:40]

``--paced 8:40`` adds a row per server of 8 clients sending 40 searches/s in all on a fixed schedule
(users who read results between searches), latency counted from when each search was due.
"""
import argparse
import http.client
import json
import os
import re
import secrets
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


def server_command(kind: str, port: int, root: Path = ROOT) -> tuple[list[str], dict[str, str]]:
    """The command and environment of a server of ``kind`` on loopback ``port``, from the code in ``root``."""
    # All: no rate limit (one user sends hundreds of searches) and only warnings logged; the
    # database and index of this checkout (a --before-tree server reads the same ones).
    env = {**os.environ, "KBSEARCH_RATE_SEARCH": "", "KBSEARCH_LOG_LEVEL": "WARNING"}
    env.setdefault("KBSEARCH_VAR_DIR", str(ROOT / "var"))
    if kind == "runserver":
        # The development server `make serve` runs: DEBUG on (plain HTTP on loopback, a per-process key).
        env["KBSEARCH_DEBUG"] = "1"
        return [sys.executable, str(root / "manage.py"), "runserver", "--noreload", f"127.0.0.1:{port}"], env
    kind, _, shape = kind.partition(":")
    if kind in ("gunicorn", "gunicorn-nocache"):
        # Production settings: DEBUG off, a secret, HTTPS as a TLS-terminating proxy reports it.
        env.pop("KBSEARCH_DEBUG", None)
        env.update(KBSEARCH_SECRET_KEY=secrets.token_urlsafe(50), KBSEARCH_PROXY_SSL_HEADER="X-Forwarded-Proto")
        if kind == "gunicorn-nocache":
            env["KBSEARCH_QUERY_CACHE_SIZE"] = "0"
        if shape:  # "2x4" or "2x4c8": workers x threads [connections per worker], for comparing shapes
            match = re.fullmatch(r"(\d+)x(\d+)(?:c(\d+))?", shape)
            if not match:
                raise SystemExit(f"bad gunicorn shape {shape!r}: WORKERSxTHREADS[cCONNECTIONS], e.g. 2x4 or 2x4c8")
            workers, threads, connections = match.groups()
            env.update(KBSEARCH_WEB_WORKERS=workers, KBSEARCH_WEB_THREADS=threads)
            if connections:
                env["KBSEARCH_WEB_WORKER_CONNECTIONS"] = connections
        command = [sys.executable, "-m", "gunicorn", "-c", str(root / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{port}"]
        return command, env
    raise SystemExit(f"unknown server {kind!r}: runserver, gunicorn[:WxT[cC]] or gunicorn-nocache[:WxT[cC]]")


def start_server(kind: str, port: int, root: Path = ROOT) -> subprocess.Popen:
    command, env = server_command(kind, port, root)
    server = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"{kind} exited with status {server.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit(f"{kind} did not start within 180 s")


def wait_ready(url: str, seconds: float = 180) -> None:
    """Until /readyz says 200 (database, index and model): gunicorn's workers load in the background."""
    parts = urlsplit(url)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        try:
            connection.request("GET", "/readyz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.5)
    raise SystemExit(f"{url} was not ready within {seconds:.0f} s")


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _descendants(pid: int) -> list[int]:
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(_children(current))
    return found


def cpu_seconds(pid: int | None) -> float:
    """User and system CPU time of a process and its live descendants (gunicorn's workers)."""
    if pid is None:
        return 0.0
    ticks = 0
    for current in _descendants(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def memory_pss_mb(pid: int) -> float:
    """Proportional set size of a process and its descendants: shared pages counted once in all."""
    total_kb, pending = 0, [pid]
    while pending:
        current = pending.pop()
        pending.extend(_children(current))
        try:
            for line in Path(f"/proc/{current}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024


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
        # X-Forwarded-Proto: what a TLS-terminating proxy adds; gunicorn's production settings
        # redirect plain HTTP otherwise (runserver, DEBUG on, ignores it).
        self.headers = {
            "Authorization": f"Token {token}", "Accept": "application/json", "Connection": "close",
            "X-Forwarded-Proto": "https",
        }

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


def run_level(url: str, keys: dict[str, str], concurrency: int, requests: int, server_pid: int | None,
              rate: float | None = None) -> dict:
    """``concurrency`` clients, each sending its next search as soon as the last one is answered;
    or, with ``rate``, paced: search n is due at n / rate seconds (an open schedule, as users who
    think between searches make), and its latency counts from when it was due, so a server that
    falls behind is charged for the wait (no coordinated omission)."""
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
            late_ms = 0.0
            if rate:
                due = started + n / rate
                time.sleep(max(0.0, due - time.perf_counter()))
                late_ms = max(0.0, time.perf_counter() - due) * 1000
            elapsed, took = client.search(QUERIES[n % len(QUERIES)])
            with lock:
                client_ms.append(elapsed + late_ms)
                server_ms.append(took)

    load_before = os.getloadavg()[0]
    server_cpu_before = cpu_seconds(server_pid)
    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    server_cpu = cpu_seconds(server_pid) - server_cpu_before
    return {
        "server_cpu_ms": server_cpu * 1000 / max(1, len(client_ms)) if server_pid else None,
        "concurrency": f"{concurrency} @ {rate:g}/s" if rate else concurrency,
        "requests": len(client_ms),
        "throughput": len(client_ms) / wall,
        "p50": statistics.median(client_ms),
        "p95": percentile(client_ms, 0.95),
        "server_p50": statistics.median(server_ms),
        "server_p95": percentile(server_ms, 0.95),
        "load_before": load_before,
    }


def measure(url: str, keys: dict[str, str], levels: list[int], requests: int, warmup: int,
            server_pid: int | None = None, paced: list[tuple[int, float]] = ()) -> list[dict]:
    warm = Client(url, keys["alice"])
    for n in range(warmup):  # fills caches (and loads the model in runserver) before measuring
        warm.search(QUERIES[n % len(QUERIES)])
    rows = [run_level(url, keys, concurrency, requests, server_pid) for concurrency in levels]
    return rows + [run_level(url, keys, clients, requests, server_pid, rate) for clients, rate in paced]


def paced_level(value: str) -> tuple[int, float]:
    clients, _, rate = value.partition(":")
    try:
        clients_count, searches_per_second = int(clients), float(rate)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected CLIENTS:RATE, e.g. 8:40, got {value!r}") from None
    if clients_count < 1 or not searches_per_second > 0:
        raise argparse.ArgumentTypeError(f"CLIENTS must be >= 1 and RATE > 0, got {value!r}")
    return clients_count, searches_per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server (loopback) to measure instead of starting them")
    parser.add_argument("--servers", default="runserver,gunicorn,gunicorn-nocache",
                        help="servers to start and measure, in order")
    parser.add_argument("--before-tree", type=Path, help="run the runserver rows from this checkout")
    parser.add_argument("--requests", type=int, default=200, help="requests per concurrency level")
    parser.add_argument("--concurrency", default="1,4,8")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--paced", type=paced_level, action="append", default=[], metavar="CLIENTS:RATE",
                        help="also CLIENTS clients sending RATE searches/s in all on a fixed schedule (repeatable)")
    args = parser.parse_args()
    keys = tokens()
    levels = [int(c) for c in args.concurrency.split(",")]
    results: list[tuple[str, dict, float | None]] = []
    if args.url:
        for row in measure(args.url, keys, levels, args.requests, args.warmup, paced=args.paced):
            results.append((args.url, row, None))
    for kind in ([] if args.url else args.servers.split(",")):
        port = free_port()
        root = args.before_tree.resolve() if args.before_tree and kind.startswith("runserver") else ROOT
        server = start_server(kind, port, root)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url)
            rows = measure(url, keys, levels, args.requests, args.warmup, server.pid, args.paced)
            memory = memory_pss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=60)
        label = f"{kind} ({_commit(root)})" if args.before_tree else kind
        results.extend((label, row, memory) for row in rows)
    workers = os.environ.get("KBSEARCH_WEB_WORKERS", "2 (default)")
    threads = os.environ.get("KBSEARCH_WEB_THREADS", "2 (default)")
    torch_threads = os.environ.get("KBSEARCH_WEB_TORCH_THREADS", "cores / workers (default)")
    connections = os.environ.get("KBSEARCH_WEB_WORKER_CONNECTIONS", "as many as threads (default)")
    print(
        f"{len(QUERIES)} queries x {len(USERS)} users, {args.requests} requests per level, {os.cpu_count()} cores; "
        f"gunicorn (unless the server names its shape): {workers} workers x {threads} threads, "
        f"{connections} connections per worker, "
        f"preload {os.environ.get('KBSEARCH_WEB_PRELOAD', 'on (default)')}, torch threads per worker {torch_threads}\n"
    )
    print("| server | clients | requests | req/s | p50 ms | p95 ms | server p50 ms | server p95 ms | "
          "server CPU ms per search | load 1 min before | memory (PSS) MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for kind, row, memory in results:
        cpu = "" if row["server_cpu_ms"] is None else f"{row['server_cpu_ms']:.1f}"
        print(
            f"| {kind} | {row['concurrency']} | {row['requests']} | {row['throughput']:.1f} | {row['p50']:.1f} | "
            f"{row['p95']:.1f} | {row['server_p50']:.1f} | {row['server_p95']:.1f} | {cpu} | {row['load_before']:.2f} | "
            f"{'' if memory is None else f'{memory:.0f}'} |"
        )


def _commit(root: Path) -> str:
    """The checkout's commit, or its folder's name (an exported tree, e.g. ``before-cc942c7``)."""
    result = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else root.name


if __name__ == "__main__":
    main()
