"""``spamcli serve``: the HTTP service that platforms, bots and hooks call.

One process loads the model and binds the socket, then forks ``--workers`` worker processes that
share the loaded model (copy-on-write) and each run an ASGI server (uvicorn) with the Starlette
app of :func:`build_app`. The parent replaces a worker that dies (even by SIGKILL) and, on
SIGTERM or SIGINT, stops the workers gracefully: they stop accepting, finish the requests in
flight, and exit.

Each worker has a :class:`Service`: the loaded model, a :class:`~spamcli.site.SiteFollower` that
applies what any worker (or ``spamcli learn``) taught, at most :data:`FOLLOW_EVERY` seconds
late, and a :class:`~spamcli.learning.Teacher` for ``/v1/learn``. A swapped model directory (the
weekly ``mv model.new model``) is noticed by its manifest and reloaded.

Endpoints (JSON in and out, the CLI's field names): ``GET /healthz``, ``POST /v1/classify``,
``POST /v1/learn``, ``POST /v1/forget``, ``POST /v1/reload``, ``GET /metrics`` (Prometheus) and
``POST /spam/detection`` (Decidim's external spam-detection contract). See docs/serve.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .batch import json_line
from .errors import ModelError, UsageError
from .records import ReadOptions, record_from_fields

log = logging.getLogger("spamcli.serve")

MAX_BODY = 1 << 20  # bytes of a request body (413 above)
MAX_ITEMS = 100  # records in one classify batch (413 above)
FOLLOW_EVERY = 0.25  # seconds between checks for taught messages and a swapped model
READ_TIMEOUT = 10.0  # seconds to receive a request body
CONTEXTS = ("content", "profile")
_timeout = getattr(asyncio, "timeout", None)


class HTTPError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class ServeOptions:
    model: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 2
    token: str | None = None
    max_bytes: int = 1_000_000
    graceful_timeout: float = 30.0


def read_token(token_file: Path | None) -> str | None:
    """The token from ``--token-file`` (first line), else ``$SPAMCLI_TOKEN``, else None."""
    if token_file is not None:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read --token-file {token_file}: {exc}") from None
        if not token or not token[0].strip():
            raise UsageError(f"--token-file {token_file} is empty")
        return token[0].strip()
    token = os.environ.get("SPAMCLI_TOKEN", "").strip()
    return token or None


def check_extra() -> None:
    """UsageError unless the serve extra is installed. Its modules are looked for, not imported:
    prometheus_client must not be imported before :func:`serve` sets up its multiprocess mode."""
    import importlib.util

    for name in ("starlette", "uvicorn", "prometheus_client"):
        if importlib.util.find_spec(name) is None:
            raise UsageError(f"spamcli serve needs the serve extra ({name} is missing): pip install 'spamcli[serve]'")


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---- the model a worker serves --------------------------------------------------------------
def _manifest_identity(directory: Path) -> tuple:
    """What changes when the model directory is swapped or retrained in place."""
    try:
        st = os.stat(directory / "manifest.json")
    except OSError:
        return ()
    return (os.path.realpath(directory), st.st_ino, st.st_mtime_ns, st.st_size)


class Service:
    """Everything one worker needs to answer: the model, what was taught, and the teacher."""

    def __init__(self, directory: Path, bundle=None, max_bytes: int = 1_000_000):
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._read_options = {  # how a JSON record becomes a Record, per context
            "content": ReadOptions(max_bytes=max_bytes),
            "profile": ReadOptions(max_bytes=max_bytes, allow_empty_text=True),
        }
        self._lock = threading.Lock()
        self._checked = 0.0
        self._follower = None
        self._teacher = None  # used only in the teaching thread (see teach)
        self._teacher_identity = None
        self.load(bundle)

    def load(self, bundle=None) -> None:
        """(Re)load the model directory; ``bundle``: one already loaded (without its site layer)."""
        from .bundle import load_bundle
        from .classifying import load_scorer

        identity = _manifest_identity(self.directory)
        bundle = bundle or load_bundle(self.directory, with_site=False)
        follower = self._follow(bundle)
        self.bundle = bundle
        self.filter = load_scorer(bundle, "content") if "content" in bundle.contexts else None
        self.profiles = load_scorer(bundle, "profile") if bundle.contexts else None
        if self._follower is not None:
            self._follower.close()
        self._follower = follower
        self.identity = identity  # the teaching thread makes a new Teacher when this changes
        self.loaded_at = time.time()

    def _follow(self, bundle):
        from .site import SITE_DB, SiteFollower, reading

        if (self.directory / SITE_DB).is_file() or os.access(self.directory, os.W_OK):
            with reading(self.directory):
                return SiteFollower(self.directory, bundle.contexts)
        return None  # a read-only model nobody can teach (the shipped one, installed as root)

    def refresh(self, force: bool = False) -> None:
        """Reload a swapped model, apply what was taught meanwhile (at most every FOLLOW_EVERY s)."""
        now = time.monotonic()
        if not force and now - self._checked < FOLLOW_EVERY:
            return
        with self._lock:
            self._checked = now
            if force or _manifest_identity(self.directory) != self.identity:
                self.load()
                METRICS.reloads()
            elif self._follower is not None:
                self._follower.poll()

    # -- requests --
    def classify(self, body: object, explain: int) -> dict:
        items = body.get("items") if isinstance(body, dict) and "items" in body else None
        if items is not None:
            if not isinstance(items, list):
                raise HTTPError(400, '"items" must be a list of records')
            if len(items) > MAX_ITEMS:
                raise HTTPError(413, f"at most {MAX_ITEMS} items per request (got {len(items)})")
            return {"results": self._classify(items, explain)}
        if not isinstance(body, dict):
            raise HTTPError(400, 'the body must be a JSON object: a record {"text": ...} or {"items": [...]}')
        return self._classify([body], explain)[0]

    def _classify(self, items: list, explain: int, numbers: list[int] | None = None) -> list[dict]:
        """Results for ``items``, in order; ``numbers``: each item's record number (its id when it
        has none; default: its position)."""
        out: list[dict | None] = [None] * len(items)
        by_context: dict[str, list] = {}
        numbers = numbers or list(range(1, len(items) + 1))
        for i, (item, number) in enumerate(zip(items, numbers)):
            if not isinstance(item, dict):
                out[i] = {"id": number, "error": "a record must be a JSON object"}
                continue
            context = item.get("context", "content")
            if context not in CONTEXTS:
                out[i] = {"id": item.get("id", number), "error": f"unknown context {context!r} (content or profile)"}
                continue
            fields = {k: v for k, v in item.items() if k != "context"}
            record = record_from_fields(fields, number, self._read_options[context])
            text = record.text or ""
            if not record.error and len(text) > self.max_bytes // 4 and len(text.encode("utf-8")) > self.max_bytes:
                record.error = f"text longer than {self.max_bytes} bytes"
            by_context.setdefault(context, []).append((i, record))
        for context, pairs in by_context.items():
            records = [r for _, r in pairs]
            if context == "profile":
                if self.profiles is None:
                    raise HTTPError(400, "the model has no context to score profiles")
                results = self.profiles.score_records(records, explain=explain)
            else:
                if self.filter is None:
                    raise HTTPError(400, "the model has no content context")
                results = self.filter.score_records(records, explain=explain)
            for (i, _), result in zip(pairs, results):
                out[i] = result
                METRICS.checked(context, result)
        return out  # type: ignore[return-value]

    def lesson(self, body: object, action: str) -> tuple[list[str], str, str]:
        """The checked ``(texts, action, context)`` of a learn or forget request."""
        if not isinstance(body, dict) or not isinstance(body.get("text"), str) or not body["text"].strip():
            raise HTTPError(400, 'the body must be {"text": "...", ...} with a non-empty text')
        if action != "forget":
            action = body.get("label")
            if action not in ("spam", "ham"):
                raise HTTPError(400, '"label" must be "spam" or "ham"')
        context = body.get("context", "content")
        if context not in CONTEXTS:
            raise HTTPError(400, f"unknown context {context!r} (content or profile)")
        text = body["text"]
        if len(text.encode("utf-8", "surrogatepass")) > self.max_bytes:
            raise HTTPError(413, f"text longer than {self.max_bytes} bytes")
        return [text], action, context

    def teach(self, texts: list[str], action: str, context: str) -> dict:
        """Teach and wait until it is durable. Runs in the worker's one teaching thread (an SQLite
        commit waits for the disk; the event loop goes on answering meanwhile); every worker,
        this one included, applies the lesson at its next refresh (within FOLLOW_EVERY)."""
        from .learning import Teacher

        if self._teacher is None or self._teacher_identity != self.identity:
            if self._teacher is not None:
                self._teacher.close()
            self._teacher = Teacher(self.directory)
            self._teacher_identity = self.identity
        report = self._teacher.teach(texts, action, context)
        METRICS.learned(action, context)
        return {"action": action, "context": context, **report.__dict__}

    def health(self) -> dict:
        contexts = {}
        for name, ctx in self.bundle.contexts.items():
            contexts[name] = {"languages": ctx.languages, "learned": ctx.site.n_messages if ctx.site else 0}
        health = {
            "path": str(self.directory),
            "created": self.bundle.created,
            "spamcli_version": self.bundle.spamcli_version,
            "contexts": contexts,
        }
        if self._follower is not None and self._follower.damage:  # serving what was taught before it
            health["site_database_error"] = self._follower.damage
        return health


# ---- metrics ---------------------------------------------------------------------------------
class _Metrics:
    """Prometheus metrics, shared by the workers through prometheus_client's multiprocess mode."""

    def __init__(self):
        self.ready = False
        self._children: dict = {}

    def _child(self, metric, *labels):
        """``metric.labels(*labels)``, looked up once (the lookup costs more than the increment)."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def setup(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.checks = Counter("spamcli_checks", "Records classified", ["context", "label", "lang"])
        self.requests = Counter("spamcli_requests", "HTTP requests", ["endpoint", "status"])
        self.latency = Histogram(
            "spamcli_request_seconds",
            "Request latency",
            ["endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        self.learns = Counter("spamcli_learns", "Messages taught or forgotten", ["action", "context"])
        self.errors = Counter("spamcli_errors", "Error responses and error records", ["kind"])
        self.reload_count = Counter("spamcli_reloads", "Model reloads")
        self.model_info = Gauge(
            "spamcli_model_info", "The model served (1)", ["created", "spamcli_version"], multiprocess_mode="max"
        )
        self.ready = True

    def checked(self, context: str, result: dict) -> None:
        if not self.ready:
            return
        if "error" in result:
            self._child(self.errors, "record").inc()
        else:
            self._child(self.checks, context, result.get("label", ""), result.get("lang") or "und").inc()

    def learned(self, action: str, context: str) -> None:
        if self.ready:
            self.learns.labels(action, context).inc()

    def reloads(self) -> None:
        if self.ready:
            self.reload_count.inc()

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        if self.ready:
            self._child(self.requests, endpoint, str(status)).inc()
            self._child(self.latency, endpoint).observe(seconds)
            if status >= 400:
                self._child(self.errors, f"http_{status}").inc()


METRICS = _Metrics()


class _Coalescer:
    """Scores the single-record classify requests that are ready at the same moment as one batch.

    A request's handler queues its record and waits; the first one schedules a flush for the end
    of the event loop's current round, by which time the other requests read in the same round
    have queued theirs. Scoring a batch costs little more than scoring one message (the fixed cost
    of a scoring call is most of a short message's), so under load the service answers more
    requests per second, and alone a request waits for nothing.
    """

    def __init__(self, service: Service):
        self.service = service
        self.pending: list[tuple[dict, asyncio.Future]] = []

    async def classify(self, record: dict) -> dict:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self.pending:
            loop.call_soon(self.flush)
        self.pending.append((record, future))
        return await future

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        try:
            records = [record for record, _ in pending]
            results = self.service._classify(records, 0, [1] * len(records))
        except Exception:  # one record's error must stay its own: score them one by one
            for record, future in pending:
                try:
                    future.set_result(self.service.classify(record, 0))
                except Exception as exc:  # noqa: BLE001 - handed to that request's handler
                    future.set_exception(exc)
            return
        for (_, future), result in zip(pending, results):
            if not future.done():
                future.set_result(result)


async def _read_capped(chunks) -> bytes:
    """A request body from its chunks, refused (413) past MAX_BODY bytes without reading on."""
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > MAX_BODY:
            raise HTTPError(413, f"body larger than {MAX_BODY} bytes")
        parts.append(chunk)
    return b"".join(parts)


class _RawRequest:
    """What the handlers use of a Starlette Request, read straight from the ASGI scope."""

    def __init__(self, scope: dict, receive):
        self.headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = scope.get("query_string", b"").decode("latin-1")
        self.query_params = dict(p.partition("=")[::2] for p in query.split("&") if p) if query else {}
        self._receive = receive

    async def stream(self):
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise HTTPError(400, "the client went away before sending its body")
            yield message.get("body", b"")
            if not message.get("more_body", False):
                return


# ---- the app ---------------------------------------------------------------------------------
def build_app(service: Service, token: str | None):
    """The Starlette app answering for ``service``; ``token``: the secret callers must present."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    expected = token.encode("utf-8") if token else None
    coalescer = _Coalescer(service)
    teaching = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spamcli-teach")

    def authorised(request: Request) -> bool:
        given = request.headers.get("x-auth-token")
        header = request.headers.get("authorization", "")
        if header[:7].lower() == "bearer ":
            given = header[7:].strip()
        return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), expected)

    def check_auth(request: Request, required: bool) -> None:
        if expected is None:
            if required:
                raise HTTPError(403, "learning and reloading need a token: serve with --token-file or SPAMCLI_TOKEN")
            return
        if not authorised(request):
            raise HTTPError(401, "missing or wrong token (Authorization: Bearer ... or X-Auth-Token)")

    async def json_body(request: Request) -> object:
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise HTTPError(400, "bad Content-Length")
            if int(length) > MAX_BODY:
                raise HTTPError(413, f"body larger than {MAX_BODY} bytes")

        try:
            if _timeout is not None:  # Python 3.11+: no task per request
                async with _timeout(READ_TIMEOUT):
                    raw = await _read_capped(request.stream())
            else:
                raw = await asyncio.wait_for(_read_capped(request.stream()), READ_TIMEOUT)
        except (asyncio.TimeoutError, TimeoutError):
            raise HTTPError(408, f"the body did not arrive within {READ_TIMEOUT:g} s") from None
        try:
            return json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise HTTPError(400, "the body is not UTF-8") from None
        except RecursionError:
            raise HTTPError(400, "invalid JSON: nested too deeply") from None
        except ValueError as exc:
            raise HTTPError(400, f"invalid JSON: {str(exc).splitlines()[0][:120]}") from None

    def respond(data: object, status: int = 200) -> Response:
        body = json_line(data) if isinstance(data, dict) else json.dumps(data, ensure_ascii=False)
        return Response(body.encode("utf-8"), status_code=status, media_type="application/json")

    def endpoint(name: str, handler, auth: bool | None):
        """Wrap a handler: auth (None: none, False: only if a token is set, True: always), refresh,
        errors as JSON, metrics."""

        async def wrapped(request: Request) -> Response:
            started = time.perf_counter()
            status = 200
            try:
                if auth is not None:
                    check_auth(request, auth)
                service.refresh()
                result = await handler(request)
                response = result if isinstance(result, Response) else respond(result)
                status = response.status_code
                return response
            except HTTPError as exc:
                status = exc.status
                return respond({"error": exc.message}, exc.status)
            except ModelError as exc:
                status = 503
                log.error("model error on %s: %s", name, exc)
                return respond({"error": f"model unavailable: {exc}"}, 503)
            except Exception:  # a bug: a log line with the traceback, never to the client
                status = 500
                log.exception("internal error on %s", name)
                return respond({"error": "internal error (logged by the server)"}, 500)
            finally:
                METRICS.request(name, status, time.perf_counter() - started)

        return wrapped

    async def healthz(request: Request):
        return {"status": "ok", "model": service.health()}

    async def classify(request: Request):
        explain = request.query_params.get("explain", "0")
        if not explain.isdigit() or int(explain) > 50:
            raise HTTPError(400, "explain must be a number of words, 0 to 50")
        body = await json_body(request)
        if int(explain) == 0 and isinstance(body, dict) and "items" not in body:
            return await coalescer.classify(body)
        return service.classify(body, int(explain))

    async def teach(request: Request, action: str):
        lesson = service.lesson(await json_body(request), action)
        return await asyncio.get_running_loop().run_in_executor(teaching, service.teach, *lesson)

    async def learn(request: Request):
        return await teach(request, "learn")

    async def forget(request: Request):
        return await teach(request, "forget")

    async def reload(request: Request):
        service.refresh(force=True)
        return {"status": "reloaded", "model": service.health()}

    async def metrics(request: Request):
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            MultiProcessCollector(registry)
        else:
            from prometheus_client import REGISTRY

            registry = REGISTRY
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def decidim(request: Request):
        """Decidim's external spam strategy: {"text", "type"} in, {"spam": "SPAM"|"NOT_SPAM"} out."""
        body = await json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            raise HTTPError(400, 'the body must be {"text": "...", "type": "..."}')
        kind = str(body.get("type") or "").lower()
        context = "profile" if kind in ("user", "users", "profile", "decidim::user") else "content"
        record = {"text": body["text"], "context": context}
        result = service.classify(record, 0)
        if "error" in result:
            raise HTTPError(422, result["error"])
        return {"spam": "SPAM" if result["label"] == "spam" else "NOT_SPAM", "score": result["score"]}

    async def not_found(request: Request, exc):
        status = getattr(exc, "status_code", 404)
        return respond({"error": "no such endpoint" if status == 404 else "method not allowed"}, status)

    routes = [
        Route("/healthz", endpoint("healthz", healthz, None), methods=["GET"]),
        Route("/v1/classify", endpoint("classify", classify, False), methods=["POST"]),
        Route("/v1/learn", endpoint("learn", learn, True), methods=["POST"]),
        Route("/v1/forget", endpoint("forget", forget, True), methods=["POST"]),
        Route("/v1/reload", endpoint("reload", reload, True), methods=["POST"]),
        Route("/metrics", endpoint("metrics", metrics, False), methods=["GET"]),
        Route("/spam/detection", endpoint("decidim", decidim, False), methods=["POST"]),
    ]
    routed = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
    hot = endpoint("classify", classify, False)

    async def app(scope, receive, send) -> None:
        """The busiest endpoint without the router's layers (same handler, same answers)."""
        if scope["type"] == "http" and scope["path"] == "/v1/classify" and scope["method"] == "POST":
            response = await hot(_RawRequest(scope, receive))
            await response(scope, receive, send)
        else:
            await routed(scope, receive, send)

    return app


# ---- processes -------------------------------------------------------------------------------
def _worker(sock: socket.socket, service: Service, token: str | None, options: ServeOptions) -> None:
    """A worker process: run the ASGI server on the inherited socket until told to stop."""
    import uvicorn

    service._follower = service._follow(service.bundle)  # an SQLite connection of our own
    service._teacher = None
    config = uvicorn.Config(
        build_app(service, token),
        log_level="warning",
        access_log=False,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=options.graceful_timeout,
        lifespan="off",
    )
    uvicorn.Server(config).run(sockets=[sock])


def serve(options: ServeOptions) -> int:
    """Run the service until SIGTERM/SIGINT; the exit code."""
    from .bundle import default_model_dir, load_bundle

    if options.workers < 1:
        raise UsageError("--workers must be 1 or more")
    if options.token is None and not is_loopback(options.host):
        raise UsageError(f"refusing to listen on {options.host} without a token (--token-file or SPAMCLI_TOKEN)")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("spamcli serve: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    directory = Path(options.model) if options.model else default_model_dir()
    bundle = load_bundle(directory, with_site=False)
    metrics_dir = tempfile.mkdtemp(prefix="spamcli-metrics-")
    if "prometheus_client" in sys.modules:  # it chose its in-process values at import: too late
        raise RuntimeError("prometheus_client was imported before serve() set up its multiprocess mode")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    METRICS.setup()
    METRICS.model_info.labels(bundle.created, bundle.spamcli_version).set(1)
    service = Service(directory, bundle, options.max_bytes)
    service.filter and service.filter.score(["warm up"])  # load language id before forking
    family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((options.host, options.port))
    except OSError as exc:
        raise UsageError(f"cannot listen on {options.host}:{options.port}: {exc.strerror}") from None
    sock.listen(1024)
    sock.set_inheritable(True)
    if service._follower is not None:  # the children open their own connection
        service._follower.close()
        service._follower = None
    children: dict[int, int] = {}
    stopping = False

    def spawn(slot: int) -> None:
        # The child must not run the parent's handler (it would only set the parent's flag and
        # carry on serving): signals wait, blocked, until it has the default ones back.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
            code = 0
            try:
                _worker(sock, service, options.token, options)
            except BaseException:  # pragma: no cover - a worker's crash is logged, the parent replaces it
                log.exception("worker crashed")
                code = 1
            finally:
                os._exit(code)
        children[pid] = slot
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})

    def stop(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for slot in range(options.workers):
        spawn(slot)
    log.info(
        "listening on http://%s:%d with %d workers, model %s",
        options.host,
        sock.getsockname()[1],
        options.workers,
        directory,
    )
    from prometheus_client import multiprocess

    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries os.wait
            continue
        slot = children.pop(pid, None)
        multiprocess.mark_process_dead(pid)
        if slot is not None and not stopping:
            log.warning("worker %d exited (status %d); starting a new one", pid, status)
            spawn(slot)
    sock.close()
    shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0
