"""``spamcli serve``: a real server on loopback, every endpoint, auth, limits, the Decidim replay."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import REPO, cli_env, run_cli

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")

TOKEN = "t0ken-for-tests"


class Server:
    """A ``spamcli serve`` subprocess and a way to call it."""

    def __init__(self, model: Path, token: str | None = TOKEN, workers: int = 2, extra: tuple = ()):
        env = cli_env()
        env.pop("SPAMCLI_TOKEN", None)
        if token:
            env["SPAMCLI_TOKEN"] = token
        args = [sys.executable, "-m", "spamcli", "serve", "--model", str(model), "--port", "0"]
        args += ["--workers", str(workers), *extra]
        self.proc = subprocess.Popen(args, env=env, cwd=REPO, stderr=subprocess.PIPE, text=True)
        self.port = None
        self.log: list[str] = []
        deadline = time.monotonic() + 60
        while self.port is None and time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            found = re.search(r"listening on http://[^:]+:(\d+)", line)
            if found:
                self.port = int(found.group(1))
        assert self.port, "".join(self.log)
        threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True).start()
        self.token = token

    def call(self, method: str, path: str, body=None, headers: dict | None = None, auth: bool = True):
        """(status, parsed JSON or text) on a new connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        hdrs = {"Content-Type": "application/json"}
        if auth and self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        hdrs.update(headers or {})
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode("utf-8")
        conn.request(method, path, body=data, headers=hdrs)
        response = conn.getresponse()
        raw = response.read()
        conn.close()
        kind = response.getheader("content-type", "")
        return response.status, (json.loads(raw) if "json" in kind else raw.decode("utf-8"))

    def workers(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


@pytest.fixture
def model(trained_model, tmp_path) -> Path:
    return Path(shutil.copytree(trained_model, tmp_path / "model"))


@pytest.fixture
def server(model):
    srv = Server(model)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def read_only(trained_model, tmp_path_factory):
    """A server and its model for the tests that change neither (no lesson, reload, kill or count
    they check): they share it."""
    model = Path(shutil.copytree(trained_model, tmp_path_factory.mktemp("served") / "model"))
    srv = Server(model)
    yield srv, model
    srv.stop()


def test_healthz_needs_no_token_and_describes_the_model(read_only):
    server, model = read_only
    status, body = server.call("GET", "/healthz", auth=False)
    assert status == 200 and body["status"] == "ok"
    assert body["model"]["path"] == str(model) and "content" in body["model"]["contexts"]


def test_classify_gives_the_clis_json_line_for_one_record_and_for_a_batch(read_only):
    server, model = read_only
    records = [
        {"id": 7, "text": "WIN a FREE iPhone now!!! Claim at http://win.example"},
        {"id": "b", "text": "Are we still on for lunch tomorrow?"},
    ]
    cli = run_cli("classify", "--model", model, stdin="".join(json.dumps(r) + "\n" for r in records))
    expected = [json.loads(line) for line in cli.stdout.splitlines()]
    status, single = server.call("POST", "/v1/classify", records[0])
    assert status == 200 and single == expected[0]
    status, batch = server.call("POST", "/v1/classify", {"items": records})
    assert status == 200 and batch == {"results": expected}
    status, explained = server.call("POST", "/v1/classify?explain=3", records[0])
    assert status == 200 and len(explained["reasons"]) == 3
    status, profile = server.call("POST", "/v1/classify", {"context": "profile", "about": "", "id": 1})
    assert status == 200 and "signals" in profile


def test_auth_bearer_or_x_auth_token_compared_and_refused_when_wrong(read_only):
    server, _ = read_only
    record = {"text": "hello"}
    assert server.call("POST", "/v1/classify", record, auth=False)[0] == 401
    assert server.call("POST", "/v1/classify", record, {"Authorization": "Bearer wrong"}, auth=False)[0] == 401
    assert server.call("POST", "/v1/classify", record, {"X-Auth-Token": TOKEN}, auth=False)[0] == 200
    status, body = server.call("POST", "/v1/learn", {"text": "x", "label": "spam"}, auth=False)
    assert status == 401 and "token" in body["error"]


def test_learning_needs_a_configured_token(model):
    srv = Server(model, token=None, workers=1)
    try:
        for path in ("/v1/learn", "/v1/forget", "/v1/reload"):
            status, body = srv.call("POST", path, {"text": "x", "label": "spam"})
            assert status == 403 and "token" in body["error"]
        assert srv.call("POST", "/v1/classify", {"text": "hello"})[0] == 200  # classify stays open on loopback
    finally:
        srv.stop()


def test_binding_a_public_address_without_a_token_is_refused(model):
    env = cli_env()
    env.pop("SPAMCLI_TOKEN", None)
    result = run_cli("serve", "--model", model, "--host", "0.0.0.0", "--port", "0", env=env, timeout=60)
    assert result.code == 2 and "token" in result.stderr


def _within(seconds: float, what: str, check) -> None:
    """Call ``check`` until it is true; a call that starts later than ``seconds`` from now fails."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"


def test_a_lesson_reaches_every_worker_within_a_second_and_forget_restores_the_score(server):
    text = "Get your cheap watches at www.watch-deal.example today"
    before = server.call("POST", "/v1/classify", {"text": text})[1]

    def answers() -> list[dict]:  # 12 new connections: every worker answers some
        return [server.call("POST", "/v1/classify", {"text": text})[1] for _ in range(12)]

    status, report = server.call("POST", "/v1/learn", {"text": text, "label": "ham"})
    assert status == 200 and report["learned"] == 1
    _within(
        1.0,
        "every answer has the lesson",
        lambda: all(
            a["label"] == "ham" and a.get("learned") == "ham" and a["score"] < before["score"] for a in answers()
        ),
    )
    assert server.call("POST", "/v1/forget", {"text": text})[1]["forgotten"] == 1
    _within(1.0, "every answer is the one before the lesson", lambda: all(a == before for a in answers()))


def test_concurrent_learns_from_all_workers_lose_nothing(server, model):
    def teach(worker: int) -> None:
        for i in range(15):
            text = f"promo code {chr(97 + worker)}{'x' * i} at shop{worker}-{chr(97 + i)}.example"
            assert server.call("POST", "/v1/learn", {"text": text, "label": "spam"})[0] == 200

    threads = [threading.Thread(target=teach, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    info = json.loads(run_cli("info", "--model", model, "--json").stdout)
    assert info["contexts"]["content"]["learned"]["spam"] == 60


def test_limits_and_errors_are_json_with_4xx_codes(read_only):
    server, _ = read_only
    assert server.call("POST", "/v1/classify", b"x" * ((1 << 20) + 1))[0] == 413
    status, body = server.call("POST", "/v1/classify", {"items": [{"text": "hi"}] * 101})
    assert status == 413 and "100" in body["error"]
    status, body = server.call("POST", "/v1/classify", b"{not json")
    assert status == 400 and body["error"].startswith("invalid JSON")
    status, body = server.call("POST", "/v1/classify", {"items": [{"text": "a" * 1_000_001}, {"text": "hi"}]})
    assert status == 200 and "longer than" in body["results"][0]["error"] and "score" in body["results"][1]
    status, body = server.call("POST", "/v1/classify", {"items": [{"text": ""}, {"nothing": 1}]})
    assert status == 200 and all("error" in r for r in body["results"])
    assert server.call("GET", "/nowhere")[0] == 404
    assert server.call("GET", "/v1/classify")[0] == 405
    assert server.call("POST", "/v1/learn", {"text": "x", "label": "maybe"})[0] == 400


def test_metrics_count_checks_learns_and_latency(server):
    server.call("POST", "/v1/classify", {"text": "hello there"})
    server.call("POST", "/v1/learn", {"text": "buy followers now at fame.example", "label": "spam"})
    status, text = server.call("GET", "/metrics")
    assert status == 200
    assert re.search(r'spamcli_checks_total\{context="content",label="\w+",lang="\w+"\} [1-9]', text)
    assert 'spamcli_learns_total{action="spam",context="content"} 1.0' in text
    assert 'spamcli_request_seconds_count{endpoint="classify"}' in text and "spamcli_model_info{" in text


def test_decidim_replay_exactly_as_the_ruby_client_sends_it(read_only):
    server, _ = read_only
    body = json.dumps({"text": "WIN a FREE iPhone now!!! Claim at http://win.example", "type": "Comment"})
    request = (
        "POST /spam/detection HTTP/1.1\r\n"
        "Accept-Encoding: gzip;q=1.0,deflate;q=0.6,identity;q=0.3\r\n"
        "Accept: application/json\r\n"
        "User-Agent: Ruby\r\n"
        "Content-Type: application/json\r\n"
        f"X-Auth-Token: {TOKEN}\r\n"
        "Connection: close\r\n"
        f"Host: 127.0.0.1:{server.port}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as conn:
        conn.sendall(request)
        raw = b""
        while chunk := conn.recv(65536):
            raw += chunk
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(payload)["spam"] == "SPAM"
    status, answer = server.call("POST", "/spam/detection", {"text": "see you at lunch", "type": "Comment"})
    assert status == 200 and answer["spam"] == "NOT_SPAM"


def test_a_swapped_model_directory_is_reloaded_and_reload_works(server, model, tmp_path):
    assert server.call("POST", "/v1/reload", {})[0] == 200
    created = server.call("GET", "/healthz")[1]["model"]["created"]
    new = tmp_path / "model.new"
    result = run_cli(
        "train", REPO / "datasets" / "samples" / "messages.jsonl", "--out", new, "--min-per-class", "5", timeout=300
    )
    assert result.code == 0, result.stderr
    old = tmp_path / "model.old"
    os.rename(model, old)
    os.rename(new, model)  # the weekly swap
    _within(60, "every worker serves the new model", lambda: all(c != created for c in _created_values(server, 8)))


def _created_values(server: Server, calls: int) -> list[str]:
    return [server.call("GET", "/healthz")[1]["model"]["created"] for _ in range(calls)]


def test_a_killed_worker_is_replaced_and_sigterm_stops_cleanly(server):
    workers = server.workers()
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (len(server.workers()) < 2 or workers[0] in server.workers()):
        time.sleep(0.1)
    assert len(server.workers()) == 2 and workers[0] not in server.workers()
    assert server.call("GET", "/healthz")[0] == 200
    assert server.stop() == 0
    assert "Traceback" not in "".join(server.log)
