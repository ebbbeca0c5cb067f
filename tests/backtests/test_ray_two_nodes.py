"""A two-node Ray cluster on 127.0.0.1: a head and a second node started as separate processes
(`ray start ... --block`, each with its own temp folder and one CPU), joined by
`attnbt sweep --executor ray --address 127.0.0.1:PORT` run as its own process. Tasks are seen
running on both nodes; the second node is killed (SIGKILL, every process of it) while it runs a
sweep task, Ray runs that task again on the head (``max_retries``), and the sweep writes the
table the local executor writes, byte for byte (test_sweep.py shows the local pool writes the
same as one process). Rule models (no training) on tiny data keep it cheap, most of it process
start-up (two nodes, a driver, a Ray worker per node), hence ``slow``.

A walk-forward joining the cluster is not run again here: it goes through the same study
driver (``backtests.execution.driver.run_study``) and the same task generator
(``walkforward.tasks.plan_tasks``, which the sweep's tasks are built from), on the same
executor (``RayExecutor`` joined by ``--address``); test_ray_executor.py shows
`attnbt walkforward --executor ray` writes the local table. A second cluster run cost about 45 s
of wall time and 35 CPU-s (a driver process and a Ray worker per node) and checked nothing the
sweep's run and that test do not (docs/scaling.md).

Everything listens on 127.0.0.1 only (checked). ``ray start --node-ip-address 127.0.0.1`` alone
would not do that: the Ray CLI swaps a loopback address for the machine's interface address
(``services.resolve_ip_for_localhost``), and ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, which keeps
a private instance on loopback, makes `ray start --address` refuse to add a node. So the nodes
are started through Ray's own CLI with that one function made to keep the address (``LAUNCH``);
the node address then decides where the GCS, raylets, agents and workers bind. The drivers run
with ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, so they too keep 127.0.0.1 (docs/scaling.md).

The cluster is this module's own: its processes are stopped by their session (never a global
``ray stop``), even when a test fails, and it has its own auth token (``RAY_AUTH_TOKEN``, so
nothing is written to ``~/.ray``).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ray = pytest.importorskip("ray")

from backtests.execution.ray_cluster import LOOPBACK_ENV  # noqa: E402

# `ray start` with the node address kept as given (127.0.0.1), then Ray's own CLI.
LAUNCH = """import sys
import ray._private.services as services
services.resolve_ip_for_localhost = lambda host: host
from ray.scripts.scripts import main
sys.argv = ["ray", *sys.argv[1:]]
main()
"""
STARTED = "Ray runtime started"
REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """One `ray start --block` process in a session of its own (its raylet, agents and workers
    are in that session too): stopped by SIGTERM to `ray start`, then SIGKILL to whatever of
    its session is left."""

    def __init__(self, name: str, args: list[str], env: dict, folder: Path) -> None:
        self.name, self.log = name, folder / f"{name}.log"
        self.temp = folder / name
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", LAUNCH, "start", "--block", "--node-ip-address=127.0.0.1",
                 "--num-cpus=1", f"--temp-dir={self.temp}", "--disable-usage-stats", *args],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.sid = self.proc.pid

    def wait_started(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")
            if STARTED in text:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"the {self.name} node did not start:\n{self.log.read_text()[-3000:]}")

    def pids(self) -> set[int]:
        return _session(self.sid)

    def kill(self) -> None:
        """SIGKILL every process of the node (a node lost)."""
        _kill(self.pids())
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM to `ray start`, which stops its node's processes; then SIGKILL what is left."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 10
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        _kill(self.pids())
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _kill(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _sessions(sids: set[int]) -> dict[int, set[int]]:
    """Live processes of each session of ``sids`` (one pass over /proc; zombies left out)."""
    out: dict[int, set[int]] = {sid: set() for sid in sids}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) in out and fields[0] != "Z":
            out[int(fields[3])].add(int(stat.parent.name))
    return out


def _session(sid: int) -> set[int]:
    """Live processes of session ``sid``."""
    return _sessions({sid})[sid]


def _running_task(pids: set[int]) -> bool:
    """Is one of ``pids`` a Ray worker running a task (its title is ray::_run_task)?"""
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::_run_task"):
                return True
        except OSError:
            continue
    return False


def _listening(pids: set[int]) -> list[tuple[str, int]]:
    """(host, port) of every TCP/UDP socket listening in one of ``pids`` (``ss``, else psutil)."""
    if shutil.which("ss"):
        lines = subprocess.run(["ss", "-H", "-l", "-t", "-u", "-n", "-p"], capture_output=True,
                               text=True, check=True).stdout.splitlines()
        out = []
        for line in lines:
            host, _, port = line.split()[4].rpartition(":")
            if pids & set(map(int, re.findall(r"pid=(\d+)", line))):
                out.append((host.strip("[]"), int(port)))
        if out or os.geteuid() == 0:
            return out
    try:
        import psutil  # Ray ships one
    except ImportError:
        pytest.skip("neither ss nor psutil can list the listening sockets here")
    return [(c.laddr.ip, c.laddr.port) for c in psutil.net_connections("inet")
            if c.pid in pids and (c.status == psutil.CONN_LISTEN or not c.raddr)]


@pytest.fixture(scope="module")
def cluster():
    """The head (the GCS, a raylet) and a second node, one CPU each, on 127.0.0.1, and the
    environment of their drivers (the cluster's token, loopback addresses)."""
    token = secrets.token_hex(32)
    env = {k: v for k, v in os.environ.items()
           if k not in (LOOPBACK_ENV, "RAY_ADDRESS", "RAY_AUTH_MODE")}
    env |= {"RAY_AUTH_TOKEN": token, "RAY_AUTH_MODE": "token", "OMP_NUM_THREADS": "1"}
    folder = Path(tempfile.mkdtemp(prefix="attnbt-ray2-"))   # short: Ray's socket paths
    port = _free_port()
    nodes: list[Node] = []
    try:
        head = Node("head", ["--head", f"--port={port}", "--include-dashboard=false"], env, folder)
        nodes.append(head)
        head.wait_started()
        second = Node("second", [f"--address=127.0.0.1:{port}"], env, folder)
        nodes.append(second)
        second.wait_started()
        path = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
        driver_env = env | {LOOPBACK_ENV: "0", "PYTHONPATH": path}
        yield {"address": f"127.0.0.1:{port}", "head": head, "second": second,
               "env": driver_env}
    finally:
        for node in reversed(nodes):
            node.stop()
        shutil.rmtree(folder, ignore_errors=True)
    assert not any(node.pids() for node in nodes), "a node's processes outlived the test"


class Watch:
    """Polls /proc while a study runs: which nodes are seen running a task; ``kill_second``:
    SIGKILL the second node while it runs a task, once the head has been seen running one."""

    def __init__(self, cluster: dict, kill_second: bool = False) -> None:
        self.nodes = {"head": cluster["head"], "second": cluster["second"]}
        self.seen: set[str] = set()
        self.killed_at: float | None = None
        self.kill_second = kill_second
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        # One pass over /proc per look (not one per node and question), ten looks a second:
        # a task runs for longer than that.
        second = self.nodes["second"]
        while not self._stop.is_set():
            pids = _sessions({node.sid for node in self.nodes.values()})
            running = {name for name, node in self.nodes.items()
                       if (self.killed_at is None or name == "head")
                       and _running_task(pids[node.sid])}
            self.seen |= running
            if (self.kill_second and self.killed_at is None and "head" in self.seen
                    and "second" in running):                   # the second node is mid-task
                second.kill()
                self.killed_at = time.monotonic()
            self._stop.wait(0.1)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _run_local(args: list[str], runs: Path) -> str:
    """The study on the local executor (one process: this one)."""
    from typer.testing import CliRunner

    from backtests.cli import app

    res = CliRunner().invoke(app, [*args, "--executor", "local", "--workers", "1",
                                   "--runs-dir", str(runs)])
    assert res.exit_code == 0, res.output
    return res.output


def _run_on_cluster(args: list[str], runs: Path, cluster: dict) -> str:
    """The study as its own `attnbt` process joining the cluster (its driver's environment)."""
    res = subprocess.run([sys.executable, "-c", "from backtests.cli import main; main()", *args,
                          "--executor", "ray", "--address", cluster["address"],
                          "--runs-dir", str(runs)],
                         env=cluster["env"], cwd=runs.parent, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr[-5000:]
    return res.stdout


FOLDS = ["--train-bars", "500", "--val-bars", "200", "--test-bars", "200", "--device", "cpu"]


def test_the_nodes_listen_on_loopback_only(cluster):
    head, second = cluster["head"], cluster["second"]
    sockets = _listening(head.pids() | second.pids())
    port = int(cluster["address"].rsplit(":", 1)[1])
    assert ("::ffff:127.0.0.1", port) in sockets or ("127.0.0.1", port) in sockets, sockets
    assert _listening(second.pids()), "the second node has no server of its own"
    wide = [s for s in sockets if not (s[0].startswith("127.") or s[0] in ("::ffff:127.0.0.1",
                                                                           "::1"))]
    assert not wide, f"listening beyond loopback: {wide}"


def test_sweep_survives_losing_the_second_node_mid_run(cluster, tmp_path):
    """2 rule models × 3 folds × 4 rule combinations: the second node is killed while it runs
    a task; its task runs again on the head and the table is the local executor's, byte for
    byte."""
    from test_walkforward_data import synthetic, write_csv

    csv = write_csv(synthetic(1300, seed=2), tmp_path / "sweep.csv")
    args = ["sweep", "--data", csv, "--models", "rule/newhl,rule/newhl-range", *FOLDS,
            "--grid", "threshold=0.4,0.5", "--grid", "stop=bar,atr:1.5", "--top", "1"]
    tables = {}
    for name in ("local", "ray"):
        runs = tmp_path / name
        if name == "ray":
            with Watch(cluster, kill_second=True) as watch:
                out = _run_on_cluster(args, runs, cluster)
            assert watch.seen == {"head", "second"} and watch.killed_at is not None
            assert not cluster["second"].pids() and cluster["head"].pids()
        else:
            out = _run_local(args, runs)
        assert "6 tasks computed, 0 reused, 0 failed" in out
        tables[name] = next(runs.glob("*/table.csv")).read_bytes()
    assert tables["ray"] == tables["local"]
