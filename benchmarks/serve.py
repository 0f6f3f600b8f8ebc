"""Load test of ``spamcli serve`` on loopback, bounded in requests and time, all in one run.

    python benchmarks/serve.py                 # ~3 minutes on 2 cores
    python benchmarks/serve.py --seconds 2     # shorter phases

For 16 and 64 keep-alive clients (one asyncio process, raw HTTP/1.1): requests/s and p50/p99
latency of ``GET /healthz``, single-message ``POST /v1/classify`` and batches of 100, on the same
server in the same run, with learns interleaved (``POST /v1/learn``, 10/s) during the classify
phases. Then: a worker killed with SIGKILL mid-phase (failed requests counted), and SIGTERM under
load (requests that were answered, refused, or lost). Baselines in the same run: the CLI's stream
throughput (``spamcli classify --jobs 2`` on the same messages) and a second server stack,
Falcon on gunicorn (gthread workers, ``--preload``), serving the same :class:`Service`.

Messages: the SMS Spam Collection from ``../shared/datasets`` (else the repository's samples).
Results: ``benchmarks/results/serve.json`` and ``serve.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
TOKEN = "bench-token"
MAX_REQUESTS = 200_000  # per phase, whatever the time


def messages() -> list[str]:
    shared = ROOT.parent / "shared" / "datasets" / "sms_spam_collection" / "sms_spam_collection.csv"
    if shared.is_file():
        import csv

        with open(shared, encoding="utf-8", newline="") as handle:
            return [row["text"] for row in csv.DictReader(handle) if row.get("text")]
    sample = ROOT / "datasets" / "samples" / "messages.csv"
    return [line.split(",")[0].strip('"') for line in sample.read_text().splitlines()[1:]]


# ---- a raw keep-alive HTTP/1.1 client --------------------------------------------------------
def request_bytes(method: str, path: str, body: bytes = b"") -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Stats:
    def __init__(self):
        self.latencies: list[float] = []
        self.ok = 0
        self.failed = 0  # lost: the connection closed in the middle of a response, or a 5xx
        self.unsent = 0  # closed or reset before any response byte
        self.refused = 0
        self.statuses: dict[int, int] = {}


async def _exchange(reader, writer, payload: bytes) -> tuple[int, bytes]:
    writer.write(payload)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    body = await reader.readexactly(length)
    return status, body


async def client(port: int, make_request, stats: Stats, deadline: float, budget: list[int]) -> None:
    reader = writer = None
    while time.monotonic() < deadline and budget[0] > 0:
        if writer is None:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                stats.refused += 1
                await asyncio.sleep(0.01)
                continue
        budget[0] -= 1
        payload = make_request()
        started = time.perf_counter()
        try:
            status, _ = await _exchange(reader, writer, payload)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                stats.failed += 1
            else:
                stats.unsent += 1
            writer.close()
            writer = None
            continue
        except OSError:  # reset before any response byte
            stats.unsent += 1
            writer.close()
            writer = None
            continue
        stats.latencies.append(time.perf_counter() - started)
        stats.statuses[status] = stats.statuses.get(status, 0) + 1
        if status >= 500:
            stats.failed += 1
        else:
            stats.ok += 1
    if writer is not None:
        writer.close()


async def load(port: int, clients: int, seconds: float, make_request, side=None) -> Stats:
    stats = Stats()
    deadline = time.monotonic() + seconds
    budget = [MAX_REQUESTS]
    tasks = [client(port, make_request, stats, deadline, budget) for _ in range(clients)]
    if side is not None:
        tasks.append(side(deadline))
    started = time.monotonic()
    await asyncio.gather(*tasks)
    stats.elapsed = time.monotonic() - started
    return stats


def summary(stats: Stats, items_per_request: int = 1) -> dict:
    lat = sorted(stats.latencies)
    q = (lambda p: round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 2)) if lat else (lambda p: None)
    return {
        "requests": stats.ok,
        "req_per_s": round(stats.ok / stats.elapsed, 1),
        "items_per_s": round(stats.ok * items_per_request / stats.elapsed, 1),
        "p50_ms": q(0.50),
        "p99_ms": q(0.99),
        "failed": stats.failed,
        "closed_before_response": stats.unsent,
        "refused": stats.refused,
        "statuses": stats.statuses,
    }


# ---- servers ---------------------------------------------------------------------------------
def start_spamcli(model: Path, workers: int) -> tuple[subprocess.Popen, int]:
    env = {**os.environ, "SPAMCLI_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "spamcli", "serve", "--model", str(model), "--port", "0", "--workers", str(workers)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    while True:
        line = proc.stderr.readline()
        if not line:
            raise RuntimeError("spamcli serve did not start")
        found = re.search(r"listening on http://[^:]+:(\d+)", line)
        if found:
            return proc, int(found.group(1))


FALCON_APP = """
import json, os
from pathlib import Path
import falcon
from spamcli.server import Service
service = Service(Path(os.environ["BENCH_MODEL"]))
service.filter.score(["warm up"])

class Health:
    def on_get(self, req, resp):
        resp.media = {"status": "ok", "model": service.health()}

class Classify:
    def on_post(self, req, resp):
        service.refresh()
        resp.text = json.dumps(service.classify(json.load(req.bounded_stream), 0), ensure_ascii=False)
        resp.content_type = "application/json"

app = falcon.App()
app.add_route("/healthz", Health())
app.add_route("/v1/classify", Classify())

def post_fork(server, worker):
    service._follower = service._follow(service.bundle)
"""


def start_falcon(model: Path, workers: int, workdir: Path) -> tuple[subprocess.Popen, int] | None:
    try:
        import falcon  # noqa: F401
        import gunicorn  # noqa: F401
    except ImportError:
        return None
    (workdir / "falcon_bench_app.py").write_text(FALCON_APP)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (workdir / "falcon_conf.py").write_text("from falcon_bench_app import post_fork  # noqa: F401\n")
    env = {**os.environ, "BENCH_MODEL": str(model), "PYTHONPATH": f"{workdir}:{ROOT}"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "falcon_bench_app:app",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            str(workers),
            "-k",
            "gthread",
            "--threads",
            "8",
            "--preload",
            "--keep-alive",
            "5",
            "-c",
            str(workdir / "falcon_conf.py"),
        ],
        env=env,
        cwd=workdir,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    return None


def workers_of(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def cli_stream_rate(model: Path, texts: list[str], n: int) -> float:
    data = "".join(t.replace("\n", " ") + "\n" for t in (texts * (n // len(texts) + 1))[:n]).encode()
    rates = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "spamcli", "classify", "--model", str(model), "--jobs", "2"],
            input=data,
            stdout=subprocess.DEVNULL,
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        rates.append(n / (time.perf_counter() - started))
    return statistics.median(rates)


def learn_rate(model: Path, texts: list[str], seconds: float, workers: int, rng) -> dict:
    """Sustained /v1/learn rate from 8 clients with 100,000 messages already learned, while 8
    others classify; then whether every worker's view holds every lesson."""
    from adapt import seed_learned

    seeded = model.parent / "model-100k"
    shutil.copytree(ROOT / "models" / "default", seeded)
    seed_learned(seeded, texts, 100_000)
    started = time.perf_counter()
    proc, port = start_spamcli(seeded, workers)
    startup = time.perf_counter() - started
    counter = iter(range(10**9))

    def word(n: int) -> str:  # a distinct word per lesson (digits would all normalise to the same token)
        return "".join(chr(97 + int(d)) for d in str(n))

    def lesson() -> bytes:
        text = f"{rng.choice(texts)} lesson {word(next(counter))}"
        return request_bytes("POST", "/v1/learn", json.dumps({"text": text, "label": "spam"}).encode())

    def single() -> bytes:
        return request_bytes("POST", "/v1/classify", json.dumps({"text": rng.choice(texts)}).encode())

    async def both():
        learns = load(port, 8, seconds, lesson)
        checks = load(port, 8, seconds, single)
        return await asyncio.gather(learns, checks)

    try:
        learns, checks = asyncio.run(both())
        time.sleep(1.0)
        seen = set()
        for _ in range(10):
            conn = socket.create_connection(("127.0.0.1", port))
            conn.sendall(request_bytes("GET", "/healthz"))
            raw = b""
            while b"}}}" not in raw:
                raw += conn.recv(65536)
            conn.close()
            seen.add(json.loads(raw.split(b"\r\n\r\n", 1)[1])["model"]["contexts"]["content"]["learned"])
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return {
        "already_learned": 100_000,
        "server_start_s": round(startup, 2),
        "learn": summary(learns),
        "classify_meanwhile": summary(checks),
        "learned_seen_by_workers": sorted(seen),
        "expected_learned": 100_000 + learns.ok,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each load phase")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    texts = messages()
    rng = random.Random(0)
    work = Path(tempfile.mkdtemp(prefix="spamcli-serve-bench-"))
    model = work / "model"
    shutil.copytree(ROOT / "models" / "default", model)
    results: dict = {"seconds_per_phase": args.seconds, "workers": args.workers, "cpus": os.cpu_count()}

    def single() -> bytes:
        return request_bytes("POST", "/v1/classify", json.dumps({"text": rng.choice(texts)}).encode())

    def batch() -> bytes:
        items = [{"text": t} for t in rng.sample(texts, 100)]
        return request_bytes("POST", "/v1/classify", json.dumps({"items": items}).encode())

    def health() -> bytes:
        return request_bytes("GET", "/healthz")

    learned = {"n": 0, "failed": 0}

    def learner(port: int):
        async def run(deadline: float) -> None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            while time.monotonic() < deadline:
                text = f"{rng.choice(texts)} {rng.random()}"
                body = json.dumps({"text": text, "label": rng.choice(["spam", "ham"])}).encode()
                status, _ = await _exchange(reader, writer, request_bytes("POST", "/v1/learn", body))
                learned["n" if status == 200 else "failed"] += 1
                await asyncio.sleep(0.1)
            writer.close()

        return run

    print("CLI stream baseline ...", file=sys.stderr)
    results["cli_stream_msgs_per_s"] = round(cli_stream_rate(model, texts, 20_000), 1)

    proc, port = start_spamcli(model, args.workers)
    try:
        for clients in (16, 64):
            phase = {}
            for name, make, per, side in (
                ("healthz", health, 1, None),
                ("classify", single, 1, learner(port)),
                ("batch100", batch, 100, learner(port)),
            ):
                print(f"{clients} clients: {name} ...", file=sys.stderr)
                phase[name] = summary(asyncio.run(load(port, clients, args.seconds, make, side)), per)
            phase["classify_vs_healthz"] = round(phase["classify"]["req_per_s"] / phase["healthz"]["req_per_s"], 3)
            phase["batch_vs_cli_stream"] = round(phase["batch100"]["items_per_s"] / results["cli_stream_msgs_per_s"], 3)
            results[f"clients_{clients}"] = phase
        results["learns_interleaved"] = dict(learned)

        print("worker killed mid-run ...", file=sys.stderr)

        async def kill_one(deadline: float) -> None:
            await asyncio.sleep(args.seconds / 3)
            os.kill(workers_of(proc.pid)[0], signal.SIGKILL)

        results["worker_killed"] = summary(asyncio.run(load(port, 16, args.seconds, single, kill_one)))
        time.sleep(1.0)
        results["workers_after_kill"] = len(workers_of(proc.pid))

        print("SIGTERM under load ...", file=sys.stderr)

        async def terminate(deadline: float) -> None:
            await asyncio.sleep(args.seconds / 3)
            proc.send_signal(signal.SIGTERM)

        results["sigterm"] = summary(asyncio.run(load(port, 16, args.seconds, single, terminate)))
        results["sigterm"]["exit_code"] = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    results["learn_with_100k"] = learn_rate(model, texts, args.seconds, args.workers, rng)

    started = start_falcon(model, args.workers, work)
    if started:
        fproc, fport = started
        try:
            stack = {}
            for name, make in (("healthz", health), ("classify", single)):
                print(f"falcon/gunicorn 16 clients: {name} ...", file=sys.stderr)
                stack[name] = summary(asyncio.run(load(fport, 16, args.seconds, make)))
            results["falcon_gunicorn_16"] = stack
        finally:
            fproc.terminate()
            fproc.wait(timeout=30)
    shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "serve.md").write_text(render(results))
    print(render(results))


def render(r: dict) -> str:
    lines = [
        f"# spamcli serve on loopback ({r['workers']} workers, {r['cpus']} CPUs, {r['seconds_per_phase']:g} s phases)",
        "",
        "| clients | endpoint | req/s | messages/s | p50 ms | p99 ms | failed |",
        "|---|---|---|---|---|---|---|",
    ]
    for clients in (16, 64):
        phase = r[f"clients_{clients}"]
        for name in ("healthz", "classify", "batch100"):
            s = phase[name]
            lines.append(
                f"| {clients} | {name} | {s['req_per_s']:,.0f} | {s['items_per_s']:,.0f} | {s['p50_ms']} | "
                f"{s['p99_ms']} | {s['failed']} |"
            )
    lines.append("")
    for clients in (16, 64):
        phase = r[f"clients_{clients}"]
        lines.append(
            f"- {clients} clients: single classify at {phase['classify_vs_healthz']:.0%} of /healthz's req/s; "
            f"batches of 100 at {phase['batch_vs_cli_stream']:.0%} of the CLI stream "
            f"({r['cli_stream_msgs_per_s']:,.0f} messages/s, `classify --jobs 2`)."
        )
    lines.append(f"- learns interleaved: {r['learns_interleaved']}")
    k = r["worker_killed"]
    lines.append(
        f"- worker killed (SIGKILL) mid-phase: {k['requests']:,} answered, "
        f"{k['failed'] + k['closed_before_response']} failed (its connections reset, with the requests in flight on "
        f"them); {r['workers_after_kill']} workers after."
    )
    t = r["sigterm"]
    lines.append(
        f"- SIGTERM under load: {t['requests']:,} answered, {t['failed']} failed (lost mid-response or 5xx), "
        f"{t['closed_before_response']} sent on connections closed or reset before any response byte "
        f"(idle keep-alive connections closed by the draining workers, and connections still in the listen "
        f"backlog: never read, so a client retries them), "
        f"{t['refused']} connection attempts refused after; exit code {t['exit_code']}."
    )
    lw = r["learn_with_100k"]
    lines.append(
        f"- with 100,000 messages learned: /v1/learn sustained {lw['learn']['req_per_s']:,.0f} learns/s "
        f"(p50 {lw['learn']['p50_ms']} ms, p99 {lw['learn']['p99_ms']} ms, 8 clients) while 8 others classified "
        f"{lw['classify_meanwhile']['req_per_s']:,.0f} req/s (p99 {lw['classify_meanwhile']['p99_ms']} ms); "
        f"1 s later the workers counted {lw['learned_seen_by_workers']} learned (expected {lw['expected_learned']:,}); "
        f"server start {lw['server_start_s']} s."
    )
    if "falcon_gunicorn_16" in r:
        f = r["falcon_gunicorn_16"]
        s16 = r["clients_16"]
        lines.append(
            f"- Falcon on gunicorn (gthread), 16 clients: /healthz {f['healthz']['req_per_s']:,.0f} req/s "
            f"(p99 {f['healthz']['p99_ms']} ms), classify {f['classify']['req_per_s']:,.0f} req/s "
            f"(p99 {f['classify']['p99_ms']} ms), against spamcli serve's {s16['healthz']['req_per_s']:,.0f} and "
            f"{s16['classify']['req_per_s']:,.0f}."
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
