#!/usr/bin/env python3
"""Same-run A/B of two builds of the `scaling` bench (issue 12's figures).

Each measurement is one child of the bench binary, started as the bench
starts it (`CONCURRENT_FUTURES_BENCH_SCALING="map primes range 2"`), which
prints its wall time and the parent's and the workers' CPU (`getrusage`);
an idle pool of each build runs beside them and its CPU is subtracted
(not from a `warm ...` mode, which measures a pool's second map alone). The
two builds alternate round by round. Prints, per mode and build, the best
and the median of the parent's and the workers' CPU per item and the wall
time.

    cargo build --release -p concurrent-futures-benches --bench scaling
    cp target/release/deps/scaling-<hash> /tmp/scaling_new   # and a base build likewise
    python3 benches/ab/scaling.py /tmp/scaling_base /tmp/scaling_new 6 \
        'map primes range 2,map primes adapter 2,map doubles range 2'
"""
import os
import statistics
import subprocess
import sys

ITEMS = {"primes": 2_499_990, "doubles": 2_000_000}


def run(exe, mode):
    env = dict(os.environ, CONCURRENT_FUTURES_BENCH_SCALING=mode)
    out = subprocess.run([exe], env=env, capture_output=True, text=True).stdout
    return [float(x) for x in out.strip().split("\n")[-1].split()]


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    builds = {"base": sys.argv[1], "new": sys.argv[2]}
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    modes = (sys.argv[4].split(",") if len(sys.argv) > 4
             else ["map primes range 2", "map primes adapter 2", "map doubles range 2"])
    results = {(build, mode): [] for build in builds for mode in modes}
    idle = {build: [] for build in builds}
    for _ in range(rounds):
        for build, exe in builds.items():
            idle[build].append(run(exe, "idle 2"))
            for mode in modes:
                results[(build, mode)].append(run(exe, mode))
    for mode in modes:
        items = ITEMS[mode.split()[1]]
        for build in builds:
            # A warm mode measures its second map alone: nothing to subtract.
            warm = mode.startswith("warm")
            idle_parent = 0 if warm else statistics.median(x[1] for x in idle[build])
            idle_workers = 0 if warm else statistics.median(x[2] for x in idle[build])
            parent = sorted((x[1] - idle_parent) / items * 1e9 for x in results[(build, mode)])
            workers = sorted((x[2] - idle_workers) / items * 1e9 for x in results[(build, mode)])
            wall = sorted(x[0] * 1e3 for x in results[(build, mode)])
            print(f"{mode:24s} {build:5s} parent {parent[0]:5.2f}/{statistics.median(parent):5.2f}"
                  f" worker {workers[0]:5.2f}/{statistics.median(workers):5.2f}"
                  f" wall {wall[0]:6.1f}/{statistics.median(wall):6.1f} ms")


if __name__ == "__main__":
    main()
