"""Same numbers before and after a change that should not change behaviour.

    python tools/same_outputs.py run OUT      # run the demo, a small walk-forward and a small sweep into OUT
    python tools/same_outputs.py diff A B     # every number in their JSON/CSV files equal (ids, times, paths aside)

`run` uses the checkout it lives in (`python -m backtests` from its root, one torch thread); run it once on
the commit before the change and once after, then `diff`. Exit status 1 when anything differs; each
difference is printed with its file, its place and both values.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["train.epochs=4", "--seeds", "1"]
JOBS = {
    "demo": ["demo", "--epochs", "60"],
    "walkforward": ["walkforward", "--models", "attention,dense,rule/newhl", "--train-bars", "1500",
                    "--val-bars", "400", "--test-bars", "400", *SMALL],
    "sweep": ["sweep", "--models", "attention,rule/newhl", "--grid", "threshold=0.5,0.6",
              "--grid", "take_profit_r=1,2", "--train-bars", "1500", "--val-bars", "400",
              "--test-bars", "400", *SMALL],
}
# Values that name or time a run rather than measure it.
IGNORED_KEYS = {"id", "run_id", "created", "created_at", "started", "finished", "finished_at", "started_at",
                "path", "dir", "folder", "runs_dir", "elapsed", "elapsed_s", "seconds", "duration_s", "wall_s",
                "host", "pid", "python", "torch", "version", "versions", "model_dir", "report", "report_path",
                "written", "updated", "time", "timestamp", "runs", "run", "model_run", "model_path"}


def run(out: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), ATTNBT_RUNS=str(out / "runs"),
               COLUMNS="120")
    out.mkdir(parents=True, exist_ok=True)
    for name, args in JOBS.items():
        print(f"· {name}: attnbt {' '.join(args)}", flush=True)
        with open(out / f"{name}.log", "w") as log:
            subprocess.run([sys.executable, "-m", "backtests", *args, "--runs-dir", str(out / "runs" / name)],
                           cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)


def _files(root: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """Files keyed by job / run kind + order / name (run folders are named by random ids), and each
    run id's stand-in (``<kind#n>``), so ids used as keys or values compare by their place."""
    found: dict[str, Path] = {}
    ids: dict[str, str] = {}
    for job in sorted(p for p in (root / "runs").iterdir() if p.is_dir()):
        runs = sorted((p for p in job.iterdir() if p.is_dir() and (p / "run.json").exists()),
                      key=lambda p: (json.loads((p / "run.json").read_text()).get("created", ""), p.name))
        seen: dict[str, int] = {}
        for r in runs:
            kind = json.loads((r / "run.json").read_text()).get("kind", "run")
            seen[kind] = seen.get(kind, 0) + 1
            ids[r.name] = f"<{job.name}/{kind}#{seen[kind]}>"
            for f in sorted(r.rglob("*")):
                if f.suffix in {".json", ".csv"} and f.is_file():
                    found[f"{job.name}/{kind}#{seen[kind]}/{f.relative_to(r)}"] = f
    return found, ids


def _same_number(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _walk(a, b, where: str, diffs: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k in IGNORED_KEYS:
                continue
            if k not in a or k not in b:
                diffs.append(f"{where}.{k}: only in {'A' if k in a else 'B'}")
                continue
            _walk(a[k], b[k], f"{where}.{k}", diffs)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            diffs.append(f"{where}: {len(a)} vs {len(b)} items")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            _walk(x, y, f"{where}[{i}]", diffs)
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if not _same_number(float(a), float(b)):
            diffs.append(f"{where}: {a!r} vs {b!r}")
    elif isinstance(a, str) and isinstance(b, str):
        # numbers written as text (CSV cells, "inf") compare as numbers; hex ids and paths are ignored
        try:
            if not _same_number(float(a), float(b)):
                diffs.append(f"{where}: {a!r} vs {b!r}")
        except ValueError:
            if a != b and not _looks_like_id_or_path(a, b):
                diffs.append(f"{where}: {a!r} vs {b!r}")
    elif a != b:
        diffs.append(f"{where}: {a!r} vs {b!r}")


def _looks_like_id_or_path(a: str, b: str) -> bool:
    hexish = all(c in "0123456789abcdef" for c in a + b) and len(a) >= 6
    return hexish or "/" in a or "/" in b or a[:4].isdigit() and a[4:5] == "-"  # ids, paths, timestamps


def _load(path: Path, ids: dict[str, str]):
    text = path.read_text(encoding="utf-8")
    if ids:
        text = re.sub("|".join(map(re.escape, ids)), lambda m: ids[m.group(0)], text)
    if path.suffix == ".json":
        return json.loads(text)
    return list(csv.DictReader(io.StringIO(text, newline="")))


def diff(a: Path, b: Path) -> int:
    (fa, ids_a), (fb, ids_b) = _files(a), _files(b)
    diffs: list[str] = [f"{k}: only in {'A' if k in fa else 'B'}" for k in sorted(set(fa) ^ set(fb))]
    numbers = 0
    for key in sorted(set(fa) & set(fb)):
        found: list[str] = []
        _walk(_load(fa[key], ids_a), _load(fb[key], ids_b), key, found)
        diffs.extend(found)
        numbers += 1
    for d in diffs:
        print(d)
    print(f"{numbers} files compared, {len(diffs)} differences")
    return 1 if diffs else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "run":
        run(Path(sys.argv[2]).resolve())
    elif len(sys.argv) == 4 and sys.argv[1] == "diff":
        sys.exit(diff(Path(sys.argv[2]), Path(sys.argv[3])))
    else:
        sys.exit(__doc__)
