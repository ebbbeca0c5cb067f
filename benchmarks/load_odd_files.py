"""Loading files that once took minutes or gigabytes: time and peak memory of each, one process
each (so one file's memory does not hide another's).

Each file is written to a temporary folder, then loaded by ``data.load`` in a fresh Python process
(``--child``) that reports its wall time and its peak resident memory; the same process first loads
nothing (``baseline``) so the import's own memory can be subtracted.

    python benchmarks/load_odd_files.py [--mb 50]
    python -m benchmarks.load_odd_files [--mb 50]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEADER = "time,open,high,low,close,volume"
ROW = "2024-01-02 {h:02d}:00,1.10000,1.10020,1.09990,1.10010,100"


def files(folder: Path, mb: int) -> dict[str, Path]:
    """The odd files, about ``mb`` MB each where the size is free."""
    n = mb * 1_000_000
    rows = [ROW.format(h=h) for h in range(3)]
    made = {
        "baseline": None,
        f"{mb} MB of blank lines": b"\n" * n,
        f"{mb} MB of ',,,,,' rows": (HEADER + "\n").encode() + b",,,,,\r\n" * (n // 7),
        f"{mb} MB of blank lines between two rows": "\n".join([HEADER, rows[0]]).encode()
        + b"\n" * n + "\n".join(rows[1:]).encode() + b"\n",
        "a header of 200,000 columns": (",".join(f"c{i}" for i in range(200_000)) + "\n"
                                        + ",".join("1" * 200_000)).encode(),
        "a header field of 200,000 characters": (HEADER + "x" * 200_000 + "\n"
                                                 + rows[0] + "\n").encode(),
    }
    out = {}
    for i, (name, content) in enumerate(made.items()):
        if content is None:
            out[name] = None
            continue
        path = folder / f"odd{i}.csv"
        path.write_bytes(content)
        out[name] = path
    return out


def child(path: str) -> None:
    """Load ``path`` (or nothing for '-') and print the outcome, seconds and peak RSS as JSON."""
    import data

    started = time.perf_counter()
    outcome = "nothing loaded"
    if path != "-":
        try:
            frame = data.load(path)
            outcome = f"{len(frame)} bars"
        except data.DataError as exc:
            outcome = f"DataError ({exc.rule})"
        except Exception as exc:  # noqa: BLE001 - an older build's raw error, reported as such
            outcome = f"raised {type(exc).__name__}"
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"outcome": outcome, "seconds": seconds, "peak_mb": peak_mb}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=50, help="size of the blank-line files (MB)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    root = Path(__file__).resolve().parents[1]
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                .splitlines() if line.startswith("model name")), platform.machine())
    print(f"machine: {cpu}, Python {platform.python_version()}")
    print(f"{'file':45} {'outcome':28} {'seconds':>8} {'peak MB':>8} {'over import':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        base = None
        for name, path in files(Path(tmp), args.mb).items():
            done = subprocess.run([sys.executable, __file__, "--child", str(path or "-")],
                                  capture_output=True, text=True, cwd=root, check=True,
                                  env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
            r = json.loads(done.stdout.strip().splitlines()[-1])
            base = r["peak_mb"] if base is None else base
            print(f"{name:45} {r['outcome']:28} {r['seconds']:8.2f} {r['peak_mb']:8.0f} "
                  f"{r['peak_mb'] - base:11.0f}")


if __name__ == "__main__":
    main()
