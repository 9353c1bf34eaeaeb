"""A real multi-node Ray cluster on one machine: each node a separate ``ray start`` process.

``LocalRayCluster(nodes=2, cpus_per_node=1)`` starts a head (``ray start --head``) and
``nodes - 1`` workers (``ray start --address``), each with its own CPU count and temp
folder, bound to the loopback address; it waits (bounded) until every node has
joined, hands out the address for ``score(..., engine="ray", address=...)`` or
``send --engine ray --ray-address ...``, and on exit stops every process it started
(SIGTERM to each node's process group, SIGKILL after a timeout) and removes its temp
folders. It never touches another Ray cluster on the machine. Benchmarks and the slow
engine test use it; on a real cluster the nodes are machines (``ray up``, KubeRay).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from labelcast.sender.engines import EngineError

__all__ = ["LocalRayCluster"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalRayCluster:
    """``nodes`` Ray nodes as separate processes on this machine (a context manager)."""

    def __init__(self, nodes: int = 2, cpus_per_node: int = 1, start_timeout: float = 90.0) -> None:
        if nodes < 1 or cpus_per_node < 1:
            raise ValueError("a cluster needs at least one node with at least one CPU")
        self.nodes, self.cpus, self.timeout = nodes, cpus_per_node, start_timeout
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []
        self.root = Path(tempfile.mkdtemp(prefix="lc-ray-", dir="/tmp"))  # short: Ray's socket paths are limited
        # loopback only, so the cluster needs no token; the driver gets the same setting while it is up
        self.env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
        self._saved: dict[str, str | None] = {}

    def _ray(self) -> str:
        exe = Path(sys.executable).with_name("ray")
        return str(exe) if exe.exists() else "ray"

    def _start(self, i: int) -> None:
        common = [f"--num-cpus={self.cpus}", f"--temp-dir={self.root / f'n{i}'}", "--block", "--disable-usage-stats"]
        if i == 0:
            args = ["--head", f"--port={self.port}", "--node-ip-address=127.0.0.1", "--include-dashboard=false"]
        else:
            args = [f"--address={self.address}", "--node-ip-address=127.0.0.1"]
        log = open(self.root / f"node{i}.log", "wb")  # noqa: SIM115 - the node process owns it until stop
        self.procs.append(
            subprocess.Popen(
                [self._ray(), "start", *args, *common],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,  # its own process group: stopped as one
            )
        )

    def _alive(self) -> int:
        code = (
            "import ray,sys; ray.init(address=sys.argv[1], log_to_driver=False, configure_logging=False);"
            "print(sum(1 for n in ray.nodes() if n['Alive'])); ray.shutdown()"
        )
        r = subprocess.run(
            [sys.executable, "-c", code, self.address], capture_output=True, text=True, env=self.env, timeout=60
        )
        return int(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 and r.stdout.strip() else 0

    def start(self) -> LocalRayCluster:
        deadline = time.time() + self.timeout
        try:
            for i in range(self.nodes):
                self._start(i)
                if i == 0:  # workers need the head's GCS up
                    while self._alive() < 1:
                        self._check(deadline)
            while self._alive() < self.nodes:
                self._check(deadline)
        except BaseException:
            self.stop()
            raise
        for k in ("RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED"):
            self._saved[k] = os.environ.get(k)
            os.environ[k] = self.env[k]
        return self

    def _check(self, deadline: float) -> None:
        for i, p in enumerate(self.procs):
            if p.poll() is not None:
                tail = (self.root / f"node{i}.log").read_text(errors="replace")[-800:]
                raise EngineError(f"Ray node {i} exited with {p.returncode} while starting: {tail}")
        if time.time() > deadline:
            raise EngineError(f"the Ray cluster did not come up within {self.timeout:.0f} s")
        time.sleep(0.5)

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        self.procs.clear()
        for k, v in self._saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._saved.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalRayCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
