#!/usr/bin/env python3
"""Paired difference of two bench runs on the same episodes, per shot.

    tools/paired.py RUN_A[:METHOD] RUN_B[:METHOD]

RUN is a run folder (or its per_episode.csv); METHOD picks one method's rows when the
run holds several (default: the run's only method). Prints, per shot, A - B in percentage
points over the episodes both hold: mean +- 1.96 * population std / sqrt(n), the CI that
bench's reports use. Analysis helper only (standard library); nothing in fsbench needs it.
"""
import csv
import math
import os
import sys


def load(arg):
    path, _, method = arg.partition(":")
    if os.path.isdir(path):
        path = os.path.join(path, "per_episode.csv")
    rows = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            rows.setdefault(r["method"], {})[(int(r["shot"]), int(r["episode"]))] = float(
                r["accuracy"])
    if not method:
        if len(rows) != 1:
            sys.exit(f"{path}: holds {', '.join(sorted(rows))}; name one as {arg}:METHOD")
        method = next(iter(rows))
    if method not in rows:
        sys.exit(f"{path}: no rows of method '{method}'")
    return rows[method]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    a, b = load(sys.argv[1]), load(sys.argv[2])
    for shot in sorted({s for s, _ in a}):
        d = [100.0 * (a[k] - b[k]) for k in sorted(a) if k[0] == shot and k in b]
        if not d:
            continue
        m = sum(d) / len(d)
        sd = math.sqrt(sum((x - m) ** 2 for x in d) / len(d))
        print(f"{shot}-shot: {m:+.2f} ± {1.96 * sd / math.sqrt(len(d)):.2f} ({len(d)} episodes)")


if __name__ == "__main__":
    main()
