"""The processes a benchmark drives: a sandbox (`syncd sandbox`, state in a SQLite file) and
`syncd sync` runs, each a child process measured from outside (wall time, peak RSS, its log).

Talks to the sandbox over HTTP only (the Selzy API and the /_sandbox/ admin API); knows nothing
about table shapes or scenarios.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

API_KEY = "bench-key"
HTTP_TIMEOUT = 600.0  # seconds per sandbox request (a seed or an export of 1M rows is slow)
START_TIMEOUT = 20.0  # seconds for the sandbox to answer after its start
STOP_TIMEOUT = 30.0  # seconds for the sandbox to exit after SIGTERM
EXPORT_TIMEOUT = 600.0  # seconds for an export task to complete
RUN_TIMEOUT = 3600.0  # seconds for one `syncd sync` before it is killed
RSS_POLL = 0.02  # seconds between VmHWM samples when GNU time is missing
GNU_TIME = "/usr/bin/time"
RATE_LIMITS = {  # Selzy's real limits per API key, set after every start of the sandbox
    "rate_limit_per_minute": 1200,
    "export_rate_limit_per_minute": 20,
}
LIMIT_CODE_PREFIX = "api_call_limit_exceeded"  # api_errors codes of Selzy's rate limits


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _request(url: str, *, data: bytes | None, method: str, content_type: str) -> Any:
    req = urllib.request.Request(  # noqa: S310 - loopback sandbox only
        url, data=data, method=method, headers={"Content-Type": content_type}
    )
    with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as resp:  # noqa: S310
        return json.loads(resp.read() or b"null")


class Sandbox:
    """One `syncd sandbox` process on a free port; its state survives restarts (state file)."""

    def __init__(self, syncd: Path, state: Path, *, export_delay: float, log: Path) -> None:
        self.syncd = syncd
        self.state = state
        self.export_delay = export_delay
        self.log = log
        self.root = ""
        self._port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"{self.root}/en/api"

    def start(self) -> None:
        """Start it (on the port of its previous start, if any: configs keep their base_url)."""
        port = self._port = self._port or free_port()
        self.root = f"http://127.0.0.1:{port}"
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    str(self.syncd),
                    "sandbox",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--state-file",
                    str(self.state),
                    "--export-delay",
                    str(self.export_delay),
                ],
                env=dict(os.environ, SELZY_API_KEY=API_KEY),
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                self.admin("", method="GET")
                break
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the sandbox did not start; see {self.log}") from None
                time.sleep(0.1)
        self.admin("settings", RATE_LIMITS)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(timeout=STOP_TIMEOUT)
        self._proc = None

    def restart(self) -> None:
        """A new process on the same state: Selzy's 60 s rate-limit window starts empty, as it
        would for a scheduled run minutes later."""
        self.stop()
        self.start()

    def admin(self, path: str, body: dict[str, Any] | None = None, method: str = "POST") -> Any:
        data = None if body is None else json.dumps(body).encode()
        return _request(
            f"{self.root}/_sandbox/{path}",
            data=data,
            method=method,
            content_type="application/json",
        )

    def api(self, method: str, form: list[tuple[str, str]]) -> Any:
        """One Selzy API call; RuntimeError for an error envelope."""
        data = urllib.parse.urlencode([("api_key", API_KEY), *form]).encode()
        body = _request(
            f"{self.api_url}/{method}",
            data=data,
            method="POST",
            content_type="application/x-www-form-urlencoded",
        )
        if "error" in body:
            raise RuntimeError(f"{method}: {body}")
        return body["result"]

    def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        query = "" if method is None else "?" + urllib.parse.urlencode({"method": method})
        return list(self.admin(f"calls{query}", method="GET")["calls"])

    def clear_calls(self) -> None:
        self.admin("calls", method="DELETE")

    def export_csv(self, list_id: int, field_names: list[str], dest: Path) -> int:
        """async/exportContacts of the list with these fields, downloaded to `dest`; its size."""
        form = [("list_id", str(list_id)), *(("field_names[]", name) for name in field_names)]
        task = self.api("async/exportContacts", form)
        deadline = time.monotonic() + EXPORT_TIMEOUT
        while True:
            result = self.api("async/getTaskResult", [("task_uuid", task["task_uuid"])])
            if result["status"] == "completed":
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"export task {task['task_uuid']} did not complete")
            time.sleep(0.2)
        with (
            urllib.request.urlopen(result["file_to_download"], timeout=HTTP_TIMEOUT) as resp,  # noqa: S310
            dest.open("wb") as out,
        ):
            shutil.copyfileobj(resp, out, 1 << 20)
        return dest.stat().st_size

    def backup(self, dest: Path) -> None:
        """A consistent copy of the state file (SQLite's online backup; WAL included)."""
        dest.unlink(missing_ok=True)
        with sqlite3.connect(self.state) as src, sqlite3.connect(dest) as dst:
            src.backup(dst)


def code_fingerprint(syncd: Path) -> tuple[str, str]:
    """(the syncd package directory behind this executable, a short hash of its code and SQL).

    The package is found by the executable's own Python (`-I`: not the working directory's
    checkout); the SQL is the package's `_sql` (a wheel) or the `sql/` beside it (a checkout).
    """
    proc = subprocess.run(
        [str(syncd.parent / "python"), "-I", "-c", "import syncd; print(syncd.__file__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        return "", ""
    package = Path(proc.stdout.strip()).parent
    digest = hashlib.sha256()
    for root in (package, package.parent / "sql"):
        files = sorted(f for f in root.rglob("*") if f.suffix in (".py", ".sql") and f.is_file())
        for f in files:
            digest.update(str(f.relative_to(root.parent)).encode() + b"\0" + f.read_bytes())
    return str(package), digest.hexdigest()[:16]


def restore_state(snapshot: Path, state: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{state}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(snapshot, state)


@dataclass
class SyncRun:
    """One `syncd sync` process as seen from outside."""

    exit: int
    seconds: float
    peak_rss_kib: int
    rss_source: str  # "gnu-time" (%M) or "vmhwm-poll"
    finished: dict[str, Any] = field(default_factory=dict)  # the run_finished log line
    digest: dict[str, Any] = field(default_factory=dict)  # its digest_written line ({}: none)
    plan: dict[str, Any] = field(default_factory=dict)  # its plan_built line

    @property
    def narrowed(self) -> bool:
        """The plan saw only the candidates the contact digest named."""
        return bool(self.plan.get("narrowed"))

    @property
    def api_errors(self) -> dict[str, int]:
        return dict(self.finished.get("api_errors") or {})

    @property
    def limit_errors(self) -> int:
        return sum(n for code, n in self.api_errors.items() if code.startswith(LIMIT_CODE_PREFIX))


def _gnu_time() -> str | None:
    if not Path(GNU_TIME).exists():
        return None
    probe = subprocess.run([GNU_TIME, "--version"], capture_output=True, check=False)
    return GNU_TIME if b"GNU" in probe.stdout + probe.stderr else None


def _vmhwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_sync(syncd: Path, config: Path, log: Path) -> SyncRun:
    """Run `syncd -c config sync` as a child process, its output into `log`.

    Peak RSS is GNU time's %M. wait4's ru_maxrss of a direct child is not used: Linux carries the
    forking parent's resident size over exec into the child's high-water mark, so it would report
    this benchmark's own memory. Without GNU time, the child's VmHWM is sampled every RSS_POLL
    seconds instead (it misses only growth in the last interval before exit).
    """
    env = dict(os.environ, SELZY_API_KEY=API_KEY)
    command = [str(syncd), "-c", str(config), "sync"]
    gnu_time = _gnu_time()
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss, log.open("wb") as out:
        if gnu_time is not None:
            command = [gnu_time, "-f", "%M", "-o", rss.name, *command]
        started = time.perf_counter()
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        peak = _wait(proc, sample_rss=gnu_time is None)
        seconds = time.perf_counter() - started
        if gnu_time is not None:
            fields = rss.read().split()
            peak = int(fields[-1]) if fields and fields[-1].isdigit() else 0
    return SyncRun(
        exit=proc.returncode,
        seconds=seconds,
        peak_rss_kib=peak,
        rss_source="gnu-time" if gnu_time else "vmhwm-poll",
        finished=_last_event(log, "run_finished"),
        digest=_last_event(log, "digest_written"),
        plan=_last_event(log, "plan_built"),
    )


def _wait(proc: subprocess.Popen[bytes], *, sample_rss: bool) -> int:
    """Wait for the child (killed after RUN_TIMEOUT); its sampled VmHWM in KiB, or 0."""
    if not sample_rss:
        try:
            proc.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return 0
    peak = 0
    deadline = time.monotonic() + RUN_TIMEOUT
    while proc.poll() is None:
        peak = max(peak, _vmhwm_kib(proc.pid))
        if time.monotonic() > deadline:
            proc.kill()
        time.sleep(RSS_POLL)
    return peak


def _last_event(log: Path, name: str) -> dict[str, Any]:
    """The last JSON log line of event `name` in a sync's output ({} when there is none)."""
    found: dict[str, Any] = {}
    with log.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if f'"{name}"' not in line or not line.startswith("{"):
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == name:
                found = event
    return found


def tail(log: Path, chars: int = 2000) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-chars:]


def _output(*command: str) -> str:
    """A command's stdout, stripped; '' when it cannot run."""
    try:
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError:
        return ""
    return proc.stdout.strip()


def machine_facts(syncd: Path, admin_dsn: str) -> dict[str, Any]:
    """What every benchmark's JSON records of the code and the machine it measured: the syncd
    executable's version, the repository's HEAD and whether its work tree was dirty, the
    PostgreSQL server's version, Python, the CPUs."""
    git = ("git", "--no-optional-locks", "-C", str(Path(__file__).resolve().parent.parent))
    return {
        "syncd_version": _output(str(syncd), "--version"),
        "repo_head": _output(*git, "rev-parse", "HEAD"),
        "repo_dirty": bool(_output(*git, "status", "--porcelain", "--untracked-files=no")),
        "postgres": _output("psql", "-X", "-At", "-d", admin_dsn, "-c", "SHOW server_version"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
