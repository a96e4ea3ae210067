"""The command that starts a training stage: plain ``python``, ``torchrun --standalone`` on one node, or
``torchrun`` with a c10d rendezvous across nodes. Pure functions; the orchestrator (or a person on a GPU
node) runs what they return.

Across nodes every node runs the same command but for ``--node-rank``; the rendezvous endpoint is node
rank 0's address (it hosts the c10d store: ``is_host`` is set for it alone), so no separate store is
needed. c10d orders ranks by node address, so global rank 0 is not guaranteed to sit on node rank 0:
whatever reports back to the orchestrator must not assume it (``orchestration.pipes_worker`` does not).
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass

#: torchrun's conventional rendezvous port
DEFAULT_RDZV_PORT = 29400
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Launch:
    """How many processes on how many nodes, and where they meet (``HOST:PORT``; None: this host, 29400)."""

    nproc_per_node: int = 1
    nnodes: int = 1
    rdzv_endpoint: str | None = None

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes

    def endpoint(self) -> str:
        return self.rdzv_endpoint or f"{socket.getfqdn()}:{DEFAULT_RDZV_PORT}"


def torchrun_command(
    launch: Launch,
    worker: list[str],
    *,
    node_rank: int = 0,
    rdzv_id: str = "hephaestus",
    python: str | None = None,
) -> list[str]:
    """The argv for node ``node_rank``: ``worker`` is what follows ``python`` (``["-m", "training", ...]``).

    One process: ``python WORKER``. One node: ``torchrun --standalone --nproc-per-node P``. Several:
    ``torchrun --nnodes N --node-rank R --rdzv-backend c10d --rdzv-endpoint HOST:PORT --rdzv-id ID``;
    with a loopback endpoint (several "nodes" on one machine, the tests) the nodes also bind loopback.
    """
    python = python or sys.executable
    if not 0 <= node_rank < launch.nnodes:
        raise ValueError(f"node_rank {node_rank} outside 0..{launch.nnodes - 1}")
    if launch.world_size == 1:
        return [python, *worker]
    run = [python, "-m", "torch.distributed.run", f"--nproc-per-node={launch.nproc_per_node}"]
    if launch.nnodes == 1:
        return [*run, "--standalone", *worker]
    endpoint = launch.endpoint()
    host = endpoint.rpartition(":")[0].strip("[]")
    run += [
        f"--nnodes={launch.nnodes}",
        f"--node-rank={node_rank}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={endpoint}",
        f"--rdzv-id={rdzv_id}",
        f"--rdzv-conf=is_host={'true' if node_rank == 0 else 'false'}",
    ]
    if host in _LOOPBACK:
        run.append(f"--local-addr={'127.0.0.1' if host == 'localhost' else host}")
    return [*run, *worker]
