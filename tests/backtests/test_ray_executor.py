"""The Ray executor: the same numbers as one process, a killed worker's task retried, a task
failing on bad data reported while the others finish, shared frames stored once, the local
instance on loopback only, and `attnbt walkforward --executor ray` giving the local table.

One private Ray instance (2 CPUs) serves the whole module. It gets its own token
(``RAY_AUTH_TOKEN``), so nothing is written to ``~/.ray``.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from backtests.execution.ray_cluster import LOOPBACK_ENV

pytestmark = pytest.mark.slow

ray = pytest.importorskip("ray")

from backtests.execution import TaskFailure  # noqa: E402
from backtests.execution.ray_cluster import RayExecutor  # noqa: E402
from data.errors import AttnbtError, DataError  # noqa: E402

SEEDS = list(range(6))


def _numbers(seed: int) -> dict:
    """Seeded numpy and torch work: the same numbers wherever it runs (one torch thread)."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((200, 50))
    torch.manual_seed(seed)
    w = torch.randn(50, 8, dtype=torch.float64)
    return {"seed": seed, "numpy": float(x.sum()),
            "torch": float(torch.tanh(torch.as_tensor(x) @ w).sum()),
            "threads": torch.get_num_threads()}


def _dies_once(task: tuple[int, str]) -> dict:
    """Seed 1's first run kills its own worker (SIGKILL) after leaving a marker file."""
    seed, marker = task
    if seed == 1:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)
    return _numbers(seed)


def _bad_data(seed: int) -> dict:
    if seed == 2:
        raise DataError("bars out of order", source="fold.csv", rows=[7], rule="sorted index")
    return _numbers(seed)


def _bug(seed: int) -> dict:
    raise ZeroDivisionError(f"a bug in task {seed}")


def _frame_sum(task) -> float:
    seed, frame = task
    return float(frame["x"].sum()) * seed


@pytest.fixture(scope="module")
def ray_ex():
    with pytest.MonkeyPatch.context() as mp:
        # Ray turns token auth on (and sets RAY_AUTH_MODE) itself; both are undone afterwards
        mp.setenv("RAY_AUTH_MODE", "unset")
        mp.delenv("RAY_AUTH_MODE")
        mp.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
        mp.setenv(LOOPBACK_ENV, "0")
        mp.setenv("RAY_ADDRESS", "127.0.0.1:9")       # a private instance joins nothing
        ex = RayExecutor(workers=2, threads=1)
        try:
            yield ex
        finally:
            ex.shutdown()
    assert not ray.is_initialized()          # the executor stopped the instance it started


@pytest.fixture(scope="module")
def local_numbers():
    """What one process computes with one torch thread, as every worker does (test_executor.py
    shows the local pool of 2 returns what one process computes; starting that pool here again
    cost two processes importing torch and checked nothing more)."""
    return [_numbers(s) | {"threads": 1} for s in SEEDS]


def test_ray_gives_the_numbers_of_one_process_in_task_order(ray_ex, local_numbers):
    done = []
    out = ray_ex.map(_numbers, SEEDS, on_done=lambda i, r: done.append(i))
    assert out == local_numbers
    assert sorted(done) == list(range(len(SEEDS)))
    assert ray.cluster_resources()["CPU"] == 2 and ray_ex.cluster_gpus() == 0


def test_a_killed_worker_is_retried_and_the_results_are_complete(ray_ex, local_numbers,
                                                                 tmp_path):
    marker = tmp_path / "killed"
    out = ray_ex.map(_dies_once, [(s, str(marker)) for s in SEEDS])
    assert marker.exists() and int(marker.read_text()) > 0     # a worker did die mid-task
    assert out == local_numbers


def test_a_task_failing_on_bad_data_is_returned_while_the_others_finish(ray_ex, local_numbers):
    done = []
    out = ray_ex.map(_bad_data, SEEDS, catch=(AttnbtError,),
                     on_done=lambda i, r: done.append(i))
    failure = out[2]
    assert isinstance(failure, TaskFailure) and failure.index == 2 and SEEDS[failure.index] == 2
    err = failure.error
    assert type(err) is DataError and err.rule == "sorted index" and err.rows == [7]
    assert str(err) == "fold.csv: line 7: sorted index: bars out of order"
    assert [r for i, r in enumerate(out) if i != 2] == [r for i, r in enumerate(local_numbers)
                                                          if i != 2]
    assert sorted(done) == list(range(len(SEEDS)))
    with pytest.raises(ZeroDivisionError, match="a bug in task 0"):   # not caught: raised
        ray_ex.map(_bug, [0], catch=(AttnbtError,))


def test_a_frame_shared_by_many_tasks_is_stored_once(ray_ex, monkeypatch):
    import pandas as pd

    a, b = pd.DataFrame({"x": [1.0, 2.0]}), pd.DataFrame({"x": [10.0]})
    puts = []
    real = ray.put
    monkeypatch.setattr(ray, "put", lambda obj, **kw: puts.append(id(obj)) or real(obj, **kw))
    out = ray_ex.map(_frame_sum, [(s, a) for s in range(4)] + [(s, b) for s in range(3)])
    assert out == [3.0 * s for s in range(4)] + [10.0 * s for s in range(3)]
    assert sorted(puts) == sorted([id(a), id(b)])


# --- loopback only ---------------------------------------------------------------------------
def _descendants(roots: set[int]) -> set[int]:
    """``roots`` and every process below them (from /proc)."""
    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(stat.parent.name)] = int(fields[1])
    out, grew = set(roots), True
    while grew:
        grew = False
        for pid, ppid in parent.items():
            if ppid in out and pid not in out:
                out.add(pid)
                grew = True
    return out


def _listening(pids: set[int]) -> list[tuple[str, int, int]]:
    """(host, port, pid) of every TCP/UDP socket listening in one of ``pids``."""
    if shutil.which("ss"):
        lines = subprocess.run(["ss", "-H", "-l", "-t", "-u", "-n", "-p"], capture_output=True,
                               text=True, check=True).stdout.splitlines()
        out = []
        for line in lines:
            cols = line.split()
            host, _, port = cols[4].rpartition(":")
            for pid in map(int, re.findall(r"pid=(\d+)", line)):
                if pid in pids:
                    out.append((host.strip("[]"), int(port), pid))
        if out or os.geteuid() == 0:
            return out
    try:
        import psutil  # Ray ships one
    except ImportError:
        pytest.skip("neither ss nor psutil can list the listening sockets here")
    return [(c.laddr.ip, c.laddr.port, c.pid) for c in psutil.net_connections("inet")
            if c.pid in pids and (c.status == psutil.CONN_LISTEN or not c.raddr)]


def test_the_local_instance_listens_on_loopback_only(ray_ex):
    node = ray._private.worker._global_node
    started = {info.process.pid for infos in node.all_processes.values() for info in infos}
    pids = _descendants(started | {os.getpid()})     # GCS, raylet, agents, workers, this driver
    ray_ex.map(_numbers, [0, 1])                      # workers up
    sockets = _listening(pids)
    ports = {port for _, port, _ in sockets}
    gcs_port = int(node.gcs_address.rsplit(":", 1)[1])
    assert {gcs_port, node.node_manager_port} <= ports, (sockets, gcs_port)
    assert node.node_ip_address == "127.0.0.1"
    assert len(sockets) >= 4, sockets
    wide = [s for s in sockets if not (s[0].startswith("127.") or s[0] == "::ffff:127.0.0.1"
                                       or s[0] == "::1")]
    assert not wide, f"listening beyond loopback: {wide}"


# --- attnbt walkforward --executor ray ---------------------------------------------------------
def test_walkforward_on_ray_gives_the_local_table(ray_ex, tmp_path):
    """1 model × 1 seed × 2 folds, 1 epoch: the same table and equity as the local executor
    (in this process: test_walkforward shows its pool of 2 gives the same table as one process).
    The CLI finds this module's Ray instance already running and uses it."""
    from test_walkforward_data import synthetic, write_csv
    from typer.testing import CliRunner

    from backtests.cli import app
    from backtests.store import Registry

    csv = write_csv(synthetic(1100, seed=1), tmp_path / "walk.csv")
    args = ["walkforward", "train.epochs=1", "--data", csv, "--models", "dense", "--seeds", "1",
            "--train-bars", "500", "--val-bars", "200", "--test-bars", "200", "--device", "cpu"]
    tables = {}
    for executor, workers in (("local", "1"), ("ray", "2")):
        runs = tmp_path / executor
        res = CliRunner().invoke(app, [*args, "--executor", executor, "--workers", workers,
                                       "--runs-dir", str(runs)])
        assert res.exit_code == 0, res.output
        assert "2 tasks computed" in res.output
        (row,) = Registry(runs).list(kind="walkforward")
        assert row["status"] == "done"
        tables[executor] = [(runs / row["id"] / name).read_text()
                            for name in ("results.csv", "equity.csv")]
    assert tables["ray"] == tables["local"]
    assert ray.is_initialized()              # the walk-forward left the fixture's instance alone


def test_gpu_shares_where_the_cluster_has_no_gpu_are_refused_before_the_run_exists(ray_ex,
                                                                                   tmp_path):
    from test_walkforward_data import synthetic, write_csv

    from backtests import walkforward as wfm
    from backtests.config import ConfigError, Experiment
    from backtests.store import Registry

    csv = write_csv(synthetic(1100, seed=1), tmp_path / "walk.csv")
    wf = wfm.WalkForward(base=Experiment().override({"runtime.runs_dir": str(tmp_path)}),
                         sources=[csv], models=wfm.parse_models("dense"), seeds=[0],
                         plan=wfm.FoldPlan(500, 200, 200), device="cuda", executor="ray")
    with pytest.raises(ConfigError, match="train.device cuda: the Ray cluster .* reports no GPU"):
        wfm.run(wf)
    assert Registry(tmp_path).list() == [] and ray.is_initialized()


# --- attnbt sweep --executor ray -----------------------------------------------------------------
def _running_tasks(pids: set[int]) -> list[int]:
    """Ray workers of ``pids`` that are running a task (their title is ray::_run_task)."""
    out = []
    for pid in pids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if cmd.startswith(b"ray::_run_task"):
            out.append(pid)
    return out


def test_sweep_on_ray_gives_the_local_table_even_when_a_worker_is_killed(ray_ex, tmp_path):
    """1 model × 1 seed × 3 folds × 4 rule combinations, 1 epoch: a worker is SIGKILLed while it
    trains; Ray retries its task and the table equals the local executor's (in this process:
    test_sweep shows its pool of 2 gives the same table as one process)."""
    import threading
    import time

    import pandas as pd
    from test_walkforward_data import synthetic, write_csv
    from typer.testing import CliRunner

    from backtests.cli import app

    csv = write_csv(synthetic(1300, seed=2), tmp_path / "walk.csv")
    args = ["sweep", "train.epochs=1", "--data", csv, "--models", "dense", "--train-bars", "500",
            "--val-bars", "200", "--test-bars", "200", "--device", "cpu",
            "--grid", "threshold=0.4,0.5", "--grid", "stop=bar,atr:1.5", "--top", "1"]
    killed: list[int] = []
    node = ray._private.worker._global_node
    started = {info.process.pid for infos in node.all_processes.values() for info in infos}
    stop = threading.Event()

    def killer() -> None:
        while not stop.is_set() and not killed:
            busy = _running_tasks(_descendants(started | {os.getpid()}))
            if busy:
                time.sleep(0.3)                       # mid-task
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
            time.sleep(0.05)

    tables = {}
    for executor, workers in (("local", "1"), ("ray", "2")):
        runs = tmp_path / executor
        thread = threading.Thread(target=killer) if executor == "ray" else None
        if thread:
            thread.start()
        try:
            res = CliRunner().invoke(app, [*args, "--executor", executor, "--workers", workers,
                                           "--runs-dir", str(runs)])
        finally:
            if thread:
                stop.set()
                thread.join()
        assert res.exit_code == 0, res.output
        assert "3 tasks computed" in res.output and "0 failed" in res.output
        tables[executor] = pd.read_csv(next(runs.glob("*/table.csv")))
    assert killed, "no Ray worker was seen running a task"
    assert len(tables["ray"]) == 4
    pd.testing.assert_frame_equal(tables["ray"], tables["local"])
