"""Real Prometheus and Alertmanager for tests, on free 127.0.0.1 ports.

Why: alert rules and dashboard queries are only proven when the real binaries
scrape real metrics and evaluate the real rules. This harness starts them with
temp storage and a generated config, polls until they are ready (never sleeps a
fixed time), and always stops them (context manager, or ``stop()``).

API
---
``free_port() -> int``
    A free TCP port on 127.0.0.1.
``poll(fn, *, timeout=30, interval=0.2, what="condition") -> T``
    Call ``fn`` until it returns something truthy; returns it. Raises
    ``TimeoutError`` naming ``what`` (and the last exception) after ``timeout`` s.
``Prometheus(targets=(), *, rule_files=(), scrape_interval="1s", evaluation_interval="1s",
             job="circuitwatch", alertmanager_urls=(), scrape_configs=(), binary="prometheus",
             extra_args=())``
    ``targets``: metric URLs (``http://127.0.0.1:PORT/metrics``) or ``host:port``
    scraped as ``job``; ``scrape_configs``: extra raw scrape config dicts;
    ``rule_files``: paths or rule-group dicts (``{"groups": [...]}``) written to
    temp files; ``alertmanager_urls``: ``http://127.0.0.1:PORT`` of Alertmanagers.
    ``.start()`` / ``.stop()`` / context manager; ``.url``; ``.config`` (the
    generated dict); ``.log()`` (stderr so far, for failure messages).
    ``.reload(rule_files=None, timeout=30)``: rewrite the config (optionally with new
    rule files), SIGHUP, and wait until exactly those rule files are loaded. Start
    without rules, ``wait_scraped()``, then ``reload(rule_files=...)`` so that no
    ``absent()`` rule sees the seconds before the first scrape (Prometheus applies
    new scrape targets only every 5s).
    ``.query(expr, at=None) -> list[dict]``: instant vector/scalar result
    (``[{"metric": {...}, "value": [ts, "1"]}, ...]``); raises ``PromQLError``.
    ``.value(expr) -> float | None``: the single sample's value (None if empty).
    ``.query_range(expr, start, end, step="1s") -> list[dict]``.
    ``.wait_for(expr, predicate=bool, timeout=60) -> list[dict]``: poll ``query``.
    ``.alerts() -> list[dict]`` (``/api/v1/alerts``), ``.rules()``
    (``/api/v1/rules`` groups), ``.targets()`` (active targets),
    ``.wait_scraped(timeout=30)``: every target has been scraped and is up.
``Alertmanager(config, *, binary="prometheus-alertmanager", extra_args=())``
    ``config``: a dict or a YAML path; started with clustering off.
    ``.url``, ``.alerts() -> list[dict]`` (``/api/v2/alerts``), ``.log()``.
``WebhookReceiver()``
    A tiny HTTP server on 127.0.0.1 recording every POSTed JSON body:
    ``.url`` (base), ``.received -> list[(path, body)]``,
    ``.wait_for(predicate, timeout=60) -> (path, body)``, ``.close()``.

Import it as ``from tests.harness.prometheus import Prometheus, ...``; skip or fail
with ``tests.conftest.need_binary("prometheus")`` first.

Example::

    with MetricsServer(registry, port=0) as metrics, WebhookReceiver() as hook, \\
            Alertmanager(am_config(hook.url)) as am, \\
            Prometheus([metrics.url], rule_files=[rules], alertmanager_urls=[am.url]) as prom:
        prom.wait_scraped()
        assert prom.value("sum(circuitwatch_events_total)") > 0
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

__all__ = [
    "Alertmanager",
    "PromQLError",
    "Prometheus",
    "WebhookReceiver",
    "free_port",
    "poll",
]


class PromQLError(RuntimeError):
    """Prometheus answered a query with an error."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def poll(fn: Callable[[], T | None], *, timeout: float = 30.0, interval: float = 0.2, what: str = "condition") -> T:
    """Return ``fn()``'s first truthy result; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = fn()
            if result:
                return result
        except Exception as e:
            last_error = e
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}{detail}")
        threading.Event().wait(interval)


def _http_json(url: str, *, data: bytes | None = None, timeout: float = 10.0) -> Any:
    req = urllib.request.Request(url, data=data)
    if data is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:  # Prometheus returns JSON errors with 4xx
        body = e.read()
        try:
            return json.loads(body)
        except ValueError:
            raise PromQLError(f"{url}: HTTP {e.code}: {body[:300]!r}") from None


class _Process:
    """A binary on a free loopback port with a temp directory; always stopped."""

    name = "process"
    start_timeout = 60.0

    def __init__(self, binary: str, extra_args: Sequence[str]) -> None:
        self.binary = binary
        self.extra_args = list(extra_args)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.dir = Path()
        self._log_path = Path()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Write config files into ``self.dir`` before each launch."""

    def start(self) -> _Process:
        path = shutil.which(self.binary) or self.binary
        self._tmp = tempfile.TemporaryDirectory(prefix=f"cw-{self.name}-")
        self.dir = Path(self._tmp.name)
        self._log_path = self.dir / "stderr.log"
        try:
            for attempt in range(3):  # a free port can be taken between probe and bind
                self.port = free_port()
                self._prepare()
                with self._log_path.open("ab") as log:
                    self.proc = subprocess.Popen(
                        [path, *self._command(), *self.extra_args],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        cwd=self.dir,
                    )
                try:
                    poll(self._ready, timeout=self.start_timeout, what=f"{self.name} ready on {self.url}")
                    return self
                except TimeoutError:
                    exited = self.proc.poll() is not None
                    self._kill()
                    if not exited or attempt == 2:
                        raise RuntimeError(f"{self.name} did not start:\n{self.log()[-3000:]}") from None
            raise AssertionError("unreachable")
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def log(self) -> str:
        try:
            return self._log_path.read_text(errors="replace")
        except OSError:
            return ""

    def _kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def stop(self) -> None:
        self._kill()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self: T) -> T:
        self.start()  # type: ignore[attr-defined]
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _target(url_or_hostport: str) -> tuple[str, str, str]:
    """(scheme, host:port, metrics_path) of a target given as a URL or host:port."""
    if "://" not in url_or_hostport:
        return "http", url_or_hostport, "/metrics"
    parsed = urllib.parse.urlsplit(url_or_hostport)
    return parsed.scheme, parsed.netloc, parsed.path or "/metrics"


class Prometheus(_Process):
    name = "prometheus"

    def __init__(
        self,
        targets: Iterable[str] = (),
        *,
        rule_files: Iterable[str | Path | Mapping[str, Any]] = (),
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        job: str = "circuitwatch",
        alertmanager_urls: Iterable[str] = (),
        scrape_configs: Iterable[Mapping[str, Any]] = (),
        binary: str = "prometheus",
        extra_args: Sequence[str] = (),
    ) -> None:
        super().__init__(binary, extra_args)
        self.target_urls = list(targets)
        self.rule_sources = list(rule_files)
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.job = job
        self.alertmanager_urls = list(alertmanager_urls)
        self.extra_scrape_configs = [dict(c) for c in scrape_configs]
        self.config: dict[str, Any] = {}
        self.rule_paths: list[str] = []

    def _prepare(self) -> None:
        rule_paths: list[str] = []
        for i, src in enumerate(self.rule_sources):
            if isinstance(src, Mapping):
                path = self.dir / f"rules-{i}.yml"
                path.write_text(yaml.safe_dump(dict(src), sort_keys=False))
            else:
                path = Path(src).resolve()
            rule_paths.append(str(path))
        self.rule_paths = rule_paths
        by_path: dict[tuple[str, str], list[str]] = {}
        for t in self.target_urls:
            scheme, hostport, metrics_path = _target(t)
            by_path.setdefault((scheme, metrics_path), []).append(hostport)
        scrape = [
            {
                "job_name": self.job if i == 0 else f"{self.job}-{i}",
                "scheme": scheme,
                "metrics_path": path,
                "static_configs": [{"targets": hosts}],
            }
            for i, ((scheme, path), hosts) in enumerate(by_path.items())
        ]
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "rule_files": rule_paths,
            "scrape_configs": scrape + self.extra_scrape_configs,
        }
        if self.alertmanager_urls:
            config["alerting"] = {
                "alertmanagers": [{"static_configs": [{"targets": [_target(u)[1] for u in self.alertmanager_urls]}]}]
            }
        self.config = config
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        (self.dir / "data").mkdir(exist_ok=True)

    def reload(self, rule_files: Iterable[str | Path | Mapping[str, Any]] | None = None, timeout: float = 30.0) -> None:
        """Apply a new config (e.g. rule files) to the running server and wait until it is loaded."""
        if self.proc is None:
            raise RuntimeError("prometheus is not running")
        if rule_files is not None:
            self.rule_sources = list(rule_files)
        self._prepare()
        expected = set(self.rule_paths)
        self.proc.send_signal(signal.SIGHUP)

        def loaded() -> bool:
            return {g["file"] for g in self.rules()} == expected

        poll(loaded, timeout=timeout, what=f"prometheus to load rule files {sorted(expected)}")

    def _command(self) -> list[str]:
        return [
            f"--config.file={self.dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1d",
            "--log.level=warn",
        ]

    def _api(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        url = f"{self.url}/api/v1/{path}"
        data = urllib.parse.urlencode(params).encode() if params is not None else None
        body = _http_json(url, data=data)
        if body.get("status") != "success":
            raise PromQLError(f"{path} {dict(params or {})}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr}
        if at is not None:
            params["time"] = repr(at)
        data = self._api("query", params)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        if not result:
            return None
        if len(result) > 1:
            raise PromQLError(f"{expr}: {len(result)} series, expected one")
        return float(result[0]["value"][1])

    def query_range(self, expr: str, start: float, end: float, step: str = "1s") -> list[dict[str, Any]]:
        data = self._api("query_range", {"query": expr, "start": repr(start), "end": repr(end), "step": step})
        result: list[dict[str, Any]] = data["result"]
        return result

    def wait_for(
        self,
        expr: str,
        predicate: Callable[[list[dict[str, Any]]], bool] = bool,
        *,
        timeout: float = 60.0,
    ) -> list[dict[str, Any]]:
        def check() -> list[dict[str, Any]] | None:
            result = self.query(expr)
            return result if predicate(result) else None

        found: list[dict[str, Any]] = poll(check, timeout=timeout, what=f"query {expr!r}")
        return found

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self._api("alerts")["alerts"]
        return alerts

    def rules(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self._api("rules")["groups"]
        return groups

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self._api("targets")["activeTargets"]
        return active

    def wait_scraped(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until every configured target has been scraped successfully."""

        def up() -> list[dict[str, Any]] | None:
            active = self.targets()
            return active if active and all(t.get("health") == "up" for t in active) else None

        found: list[dict[str, Any]] = poll(up, timeout=timeout, what="all scrape targets up")
        return found


class Alertmanager(_Process):
    name = "alertmanager"

    def __init__(
        self,
        config: Mapping[str, Any] | str | Path,
        *,
        binary: str = "prometheus-alertmanager",
        extra_args: Sequence[str] = (),
    ) -> None:
        super().__init__(binary, extra_args)
        self.config_source = config

    def _prepare(self) -> None:
        text = (
            yaml.safe_dump(dict(self.config_source), sort_keys=False)
            if isinstance(self.config_source, Mapping)
            else Path(self.config_source).read_text()
        )
        (self.dir / "alertmanager.yml").write_text(text)
        (self.dir / "data").mkdir(exist_ok=True)

    def _command(self) -> list[str]:
        return [
            f"--config.file={self.dir / 'alertmanager.yml'}",
            f"--storage.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--web.external-url={self.url}",
            "--cluster.listen-address=",  # no gossip port: a single local instance
            "--log.level=warn",
        ]

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = _http_json(f"{self.url}/api/v2/alerts")
        return alerts


class WebhookReceiver:
    """Records JSON POSTs (Alertmanager webhook / PagerDuty-style payloads) on 127.0.0.1."""

    def __init__(self) -> None:
        self.received: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
                with receiver._lock:
                    receiver.received.append((self.path, body))
                self.send_response(202 if self.path.startswith("/pagerduty") else 200)
                self.send_header("Content-Type", "application/json")
                payload = b'{"status":"success","message":"Event processed","dedup_key":"test"}'
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def snapshot(self) -> list[tuple[str, Any]]:
        with self._lock:
            return list(self.received)

    def wait_for(self, predicate: Callable[[str, Any], bool], *, timeout: float = 60.0) -> tuple[str, Any]:
        def check() -> tuple[str, Any] | None:
            return next(((p, b) for p, b in self.snapshot() if predicate(p, b)), None)

        found: tuple[str, Any] = poll(check, timeout=timeout, what="a matching webhook delivery")
        return found

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> WebhookReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
