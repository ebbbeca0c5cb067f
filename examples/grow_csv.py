"""Grow a CSV of candles the way a terminal export does: the EURUSD H1 sample, bar by bar.

    python examples/grow_csv.py live.csv --init 4000     # the sample's first 4,000 bars
    python examples/grow_csv.py live.csv --append 5      # the next 5 bars of the sample
    python examples/grow_csv.py live.csv --every 10      # one more bar every 10 s (Ctrl-C stops)

For trying `attnbt paper` without a broker: init an account on the file, append, step.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from data.sources import sample_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", type=Path)
    ap.add_argument("--init", type=int, help="(re)write the file with the first N bars")
    ap.add_argument("--append", type=int, default=0, help="append the next N bars")
    ap.add_argument("--every", type=float, help="append one bar every this many seconds")
    args = ap.parse_args()
    lines = sample_path("EURUSD_H1").read_text().splitlines(keepends=True)
    if args.init is not None:
        args.csv.write_text("".join(lines[:1 + args.init]))
    have = len(args.csv.read_text().splitlines()) if args.csv.exists() else 0
    if have == 0:
        raise SystemExit(f"{args.csv} does not exist yet: start with --init N")

    def append(n: int) -> int:
        nonlocal have
        chunk = lines[have:have + n]
        with args.csv.open("a") as fh:
            fh.write("".join(chunk))
        have += len(chunk)
        if chunk:
            print(f"appended {len(chunk)} bar(s), last {chunk[-1].split(',')[0]}")
        return len(chunk)

    append(args.append)
    while args.every and append(1):
        time.sleep(args.every)


if __name__ == "__main__":
    main()
