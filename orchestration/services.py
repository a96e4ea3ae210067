"""The `cluster` profile's services on one machine: PostgreSQL, Redis, an MLflow tracking server and
Celery workers — the real servers (Debian's ``postgresql`` and ``redis-server`` packages, MLflow and
Celery from the project's environment), each bound to 127.0.0.1 on a free port.

Passwords are generated at every start (``secrets``) and never committed: they reach the processes
through the environment and ``<dir>/services.env`` (mode 0600), which ``make services`` tells you to
source. PostgreSQL keeps its data between starts (the role's password is rotated over the Unix socket,
where the server's own OS user is trusted); Redis keeps nothing (the broker's queues are transient).

Used by ``make services`` / ``make cluster-demo`` (``python -m orchestration.services``) and by the
tests' session fixture; a real cluster runs the same servers on their own hosts (README: Deployment).
This module never imports Dagster: the workers it starts do.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

#: the database role every service uses, and its two databases
PG_ROLE = "hephaestus"
PG_DATABASES = ("dagster", "mlflow")


class ServiceError(RuntimeError):
    """A service that could not start (the message says which, why, and where its log is)."""


def postgres_bindir() -> Path | None:
    """Debian's ``/usr/lib/postgresql/<major>/bin`` (newest first), else ``initdb`` on PATH."""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major, reverse=True):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _major(path: str) -> int:
    part = Path(path).parent.name
    return int(part) if part.isdigit() else 0


def missing_binaries() -> list[str]:
    """What this machine lacks to run the services (empty: everything is there)."""
    missing = [] if postgres_bindir() else ["postgresql (initdb, pg_ctl)"]
    if shutil.which("redis-server") is None:
        missing.append("redis-server")
    return missing


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(check, timeout: float, what: str, log: Path | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    raise ServiceError(f"{what} did not come up within {timeout:.0f} s (log {log}):\n{tail}")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Services:
    """The services of one state directory ``root``; ``start`` brings up what is not running.

    As root, PostgreSQL runs as the ``postgres`` user (it refuses root) from a data directory owned by
    it; otherwise as the calling user. Every process starts in its own session, so a crash of the
    caller never takes them down and ``stop`` ends each by its pid.
    """

    root: Path
    workers: list[str] = field(default_factory=list)
    state: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        self.logs = self.root / "logs"
        state_file = self.root / "services.json"
        if state_file.exists():
            self.state = json.loads(state_file.read_text())

    # -- state ---------------------------------------------------------------------------------
    def _save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        _write_private(self.root / "services.json", json.dumps(self.state, indent=1))
        lines = [f"export {k}='{v}'" for k, v in sorted(self.env().items())]
        _write_private(self.root / "services.env", "\n".join(lines) + "\n")

    def env(self) -> dict[str, str]:
        """The variables the Dagster instance, the MLflow client and the Celery workers read."""
        s = self.state
        out: dict[str, str] = {}
        if "pg_port" in s:
            out |= {
                "DAGSTER_PG_HOST": "127.0.0.1",
                "DAGSTER_PG_PORT": str(s["pg_port"]),
                "DAGSTER_PG_USERNAME": PG_ROLE,
                "DAGSTER_PG_PASSWORD": s["pg_password"],
                "DAGSTER_PG_DB": "dagster",
            }
        if "redis_port" in s:
            url = f"redis://:{s['redis_password']}@127.0.0.1:{s['redis_port']}"
            out |= {"HEPHAESTUS_CELERY_BROKER": f"{url}/0", "HEPHAESTUS_CELERY_BACKEND": f"{url}/1"}
        if "mlflow_port" in s:
            out["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{s['mlflow_port']}"
        return out

    @property
    def pg_uri(self) -> str:
        s = self.state
        return f"postgresql://{PG_ROLE}:{s['pg_password']}@127.0.0.1:{s['pg_port']}"

    # -- PostgreSQL ----------------------------------------------------------------------------
    @property
    def _pg_data(self) -> Path:
        return self.root / "postgres" / "data"

    @property
    def _pg_sock(self) -> Path:
        return self.root / "postgres" / "run"

    def _as_pg_user(self, cmd: list[str], **kw) -> subprocess.CompletedProcess:
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, **kw)

    def _pg_user(self) -> str:
        import pwd

        return "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        bindir = postgres_bindir()
        if bindir is None:
            raise ServiceError("PostgreSQL is not installed: run `make services-install` (apt-get, as root)")
        proc = self._as_pg_user([str(bindir / "pg_ctl"), "-D", str(self._pg_data), *args])
        if check and proc.returncode != 0:
            log = self.logs / "postgres.log"
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            raise ServiceError(f"pg_ctl {' '.join(args)} failed: {proc.stderr.strip()}\n{tail}")
        return proc

    def start_postgres(self) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise ServiceError("PostgreSQL is not installed: run `make services-install` (apt-get, as root)")
        pg_dir = self.root / "postgres"
        self.logs.mkdir(parents=True, exist_ok=True)
        fresh = not (self._pg_data / "PG_VERSION").exists()
        if fresh:
            shutil.rmtree(pg_dir, ignore_errors=True)
            self._pg_sock.mkdir(parents=True)
            self._pg_data.mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(pg_dir, "postgres", "postgres")
            for d in (self._pg_data, self._pg_sock):
                shutil.chown(d, "postgres", "postgres")
            log = self.logs / "postgres.log"
            log.touch()
            shutil.chown(log, "postgres", "postgres")
            probe = self._as_pg_user(["test", "-w", str(self._pg_data)])
            if probe.returncode != 0:
                raise ServiceError(
                    f"the postgres user cannot write {self._pg_data}: a parent directory is not "
                    "traversable by it (put the services directory under /tmp or a world-searchable path)"
                )
        if fresh:
            init = self._as_pg_user(
                [str(bindir / "initdb"), "-D", str(self._pg_data), "-U", self._pg_user(), "-E", "UTF8",
                 "--locale=C", "--auth-local=peer", "--auth-host=scram-sha-256"]
            )  # fmt: skip
            if init.returncode != 0:
                raise ServiceError(f"initdb failed: {init.stderr.strip()[-1500:]}")
        port = self.state.get("pg_port") if not fresh else None
        port = port if port and not _port_open(port) else free_port()
        self.state["pg_port"] = port
        self._pg_ctl(*self._pg_start_args(), "start")
        # a new password at every start, set over the Unix socket (peer auth: the server's OS user)
        password = secrets.token_urlsafe(24)
        self.state["pg_password"] = password
        self._psql(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{PG_ROLE}') THEN "
            f"CREATE ROLE {PG_ROLE} LOGIN; END IF; END $$;",
            f"ALTER ROLE {PG_ROLE} PASSWORD '{password}';",
        )
        existing = self._psql("SELECT datname FROM pg_database;", capture=True)
        for db in PG_DATABASES:
            if db not in existing.split():
                self._psql(f"CREATE DATABASE {db} OWNER {PG_ROLE};")
        self._save()

    def _psql(self, *statements: str, capture: bool = False) -> str:
        bindir = postgres_bindir()
        assert bindir is not None
        cmd = [str(bindir / "psql"), "-h", str(self._pg_sock), "-p", str(self.state["pg_port"]),
               "-U", self._pg_user(), "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qAt"]  # fmt: skip
        for statement in statements:
            cmd += ["-c", statement]
        proc = self._as_pg_user(cmd)
        if proc.returncode != 0:
            raise ServiceError(f"psql failed: {proc.stderr.strip()}")
        return proc.stdout if capture else ""

    def stop_postgres(self) -> None:
        if (self._pg_data / "postmaster.pid").exists():
            self._pg_ctl("-m", "fast", "-w", "stop", check=False)

    def restart_postgres(self) -> None:
        """Stop (fast: open connections are cut) and start again on the same port and password."""
        self._pg_ctl(*self._pg_start_args(), "-m", "fast", "restart")

    def _pg_start_args(self) -> list[str]:
        # the log file again on restart: else the new server writes to pg_ctl's output, which never closes
        opts = f"-p {self.state['pg_port']} -k {self._pg_sock} -c listen_addresses=127.0.0.1 -c max_connections=200"
        return ["-l", str(self.logs / "postgres.log"), "-o", opts, "-w", "-t", "60"]

    # -- Redis ---------------------------------------------------------------------------------
    def start_redis(self) -> None:
        if shutil.which("redis-server") is None:
            raise ServiceError(
                "redis-server is not installed: run `make services-install` (apt-get, as root)"
            )
        rdir = self.root / "redis"
        rdir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        port, password = free_port(), secrets.token_urlsafe(24)
        conf = rdir / "redis.conf"
        _write_private(
            conf,
            f"bind 127.0.0.1\nport {port}\nprotected-mode yes\nrequirepass {password}\n"
            f'dir {rdir}\nsave ""\nappendonly no\ndaemonize no\n',
        )
        pid = self._spawn("redis", ["redis-server", str(conf)], os.environ.copy())
        self.state |= {"redis_port": port, "redis_password": password, "redis_pid": pid}
        _wait(lambda: _port_open(port), 30, "redis-server", self.logs / "redis.log")
        self._save()

    # -- MLflow --------------------------------------------------------------------------------
    def start_mlflow(self, artifact_root: Path, wait: bool = True) -> None:
        """``mlflow server`` on the ``mlflow`` database, artifacts written by clients straight to
        ``artifact_root`` (the shared filesystem; no artifact proxy)."""
        artifact_root.mkdir(parents=True, exist_ok=True)
        port = free_port()
        env = {
            **os.environ,
            "MLFLOW_BACKEND_STORE_URI": f"{self.pg_uri.replace('postgresql:', 'postgresql+psycopg2:')}/mlflow",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        cmd = [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1", "--default-artifact-root", artifact_root.as_uri(),
               "--no-serve-artifacts"]  # fmt: skip
        pid = self._spawn("mlflow", cmd, env)
        self.state |= {"mlflow_port": port, "mlflow_pid": pid, "mlflow_artifacts": str(artifact_root)}
        self._save()
        if wait:
            self.wait_mlflow()

    def wait_mlflow(self, timeout: float = 240) -> None:
        url = f"http://127.0.0.1:{self.state['mlflow_port']}/health"
        pid, log = self.state["mlflow_pid"], self.logs / "mlflow.log"

        def up() -> bool:
            if not _alive(pid):
                raise ServiceError(f"mlflow server exited (log {log}):\n{_tail(log)}")
            return _http_ok(url)

        _wait(up, timeout, "mlflow server", log)

    # -- Celery workers ------------------------------------------------------------------------
    def start_worker(self, name: str, env: dict[str, str], wait: bool = True) -> int:
        """A Celery worker named ``name@<host>`` running one step at a time (solo pool: the step runs
        in the worker process itself, so a kill -9 of that pid stops the step). Returns its pid."""
        log = self.logs / f"worker-{name}.log"
        log.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "celery", "-A", "orchestration.celery_worker:app", "worker",
               "-P", "solo", "-n", f"{name}@%h", "-Q", "dagster", "-l", "INFO",
               "--without-gossip", "--without-mingle", "--without-heartbeat"]  # fmt: skip
        pid = self._spawn(f"worker-{name}", cmd, {**os.environ, **env, **self.env()})
        self.state.setdefault("workers", {})[name] = pid
        self._save()
        if wait:
            self.wait_worker(name)
        return pid

    def wait_worker(self, name: str, timeout: float = 180) -> None:
        log, pid = self.logs / f"worker-{name}.log", self.state["workers"][name]

        def ready() -> bool:
            if not _alive(pid):
                raise ServiceError(f"celery worker {name} exited (log {log}):\n{_tail(log)}")
            return log.exists() and " ready." in log.read_text(errors="replace")

        _wait(ready, timeout, f"celery worker {name}", log)

    def kill_worker(self, name: str) -> None:
        """kill -9 the worker (and anything its step started): the fault the tests inject."""
        pid = self.state["workers"].pop(name)
        _kill_group(pid, signal.SIGKILL)
        self._save()

    # -- everything ----------------------------------------------------------------------------
    def start(self, artifact_root: Path, worker_env: dict[str, str], n_workers: int = 2) -> None:
        self.start_postgres()
        self.start_redis()
        # MLflow and the workers start side by side (each takes seconds to import); wait for all
        self.start_mlflow(artifact_root, wait=False)
        names = [f"worker{i + 1}" for i in range(n_workers)]
        for name in names:
            self.start_worker(name, worker_env, wait=False)
        self.wait_mlflow()
        for name in names:
            self.wait_worker(name)

    def stop(self) -> None:
        """End every process this directory started (by pid: workers, MLflow, Redis) and PostgreSQL."""
        for pid in list(self.state.get("workers", {}).values()):
            _kill_group(pid, signal.SIGTERM)
        for key in ("mlflow_pid", "redis_pid"):
            if key in self.state:
                _kill_group(self.state[key], signal.SIGTERM)
        for pid in [
            *self.state.get("workers", {}).values(),
            self.state.get("mlflow_pid"),
            self.state.get("redis_pid"),
        ]:
            if pid:
                _reap(pid)
        self.stop_postgres()
        for key in ("workers", "mlflow_pid", "redis_pid", "mlflow_port", "redis_port", "redis_password"):
            self.state.pop(key, None)
        if self.root.exists():
            self._save()

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> int:
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True, cwd=_repo_root(),
            )  # fmt: skip
        return proc.pid


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds passwords), atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill_group(pid: int, sig: int) -> None:
    """Signal the session ``pid`` leads (the service and whatever it started)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(pid: int, timeout: float = 8) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        _kill_group(pid, signal.SIGKILL)
        _alive(pid)


def _tail(path: Path, n: int = 2000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else ""


def default_dir() -> Path:
    from assets.profile import default_home

    return default_home() / "services"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestration.services", description=__doc__.split("\n")[0]
    )
    parser.add_argument("action", choices=["start", "stop", "restart-postgres", "env"])
    parser.add_argument(
        "--dir", type=Path, default=None, help="state directory (default $HEPHAESTUS_HOME/services)"
    )
    parser.add_argument("--profile", default=os.environ.get("HEPHAESTUS_PROFILE", "cluster_micro"))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    services = Services(args.dir or default_dir())
    if args.action == "start":
        missing = missing_binaries()
        if missing:
            print(
                f"services: missing {', '.join(missing)}; run `make services-install` as root",
                file=sys.stderr,
            )
            return 1
        from orchestration.cluster import worker_environment

        env = worker_environment(args.profile)
        try:
            services.start(Path(env["HEPHAESTUS_HOME"]) / "mlflow-artifacts", env, args.workers)
        except ServiceError:
            services.stop()
            raise
        print(f"services up (profile {args.profile}): PostgreSQL :{services.state['pg_port']}, "
              f"Redis :{services.state['redis_port']}, MLflow http://127.0.0.1:{services.state['mlflow_port']}, "
              f"{args.workers} Celery workers {services.state['workers']}")  # fmt: skip
        print(f"passwords generated for this start; source {services.root / 'services.env'}")
    elif args.action == "stop":
        services.stop()
        print("services stopped")
    elif args.action == "restart-postgres":
        services.restart_postgres()
    else:
        print((services.root / "services.env").read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
