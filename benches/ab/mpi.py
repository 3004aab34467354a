#!/usr/bin/env python3
"""Same-run A/B of two builds of the `mpi` bench (issue 13's figures).

Each measurement is one `mpirun` job of the bench binary as its launcher
would start it (`mpirun -n N BIN WORKLOAD RUNNER 1`), the two builds
alternated round by round so that a noisy neighbour hurts them alike.
Prints medians (and the best) of: wall time per item, rank 0's own CPU per
item (`getrusage` in the job), the speed-up over the sequential run in the
same job (primes only), and the whole job's CPU (`RUSAGE_CHILDREN` around
the job: mpirun and every rank).

    cargo build --release -p concurrent-futures-benches --features mpi --bench mpi
    cp target/release/deps/mpi-<hash> /tmp/mpi_new     # and a base build likewise
    python3 benches/ab/mpi.py /tmp/mpi_base /tmp/mpi_new 7 3:primes:direct 2:noop:direct

A mode is RANKS:WORKLOAD:RUNNER, WORKLOAD one of noop, primes, map and
RUNNER one of direct, local, local1 (see `benches/mpi.rs`).
"""
import os
import resource
import statistics
import subprocess
import sys


def run(exe, mode, env):
    ranks, workload, runner = mode.split(":")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(["mpirun", "-n", ranks, exe, workload, runner, "1"],
                         env=env, capture_output=True, text=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    job = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    measured = {}
    for line in out.splitlines():
        words = line.split()
        if words and words[0] == "measured":
            measured[words[1]] = (int(words[2]), float(words[3]), float(words[4]))
    items, wall, cpu = measured["pool"]
    sequential = measured.get("sequential", (0, 0.0, 0.0))[1]
    return (wall * 1e9 / items, cpu * 1e9 / items, sequential / wall if sequential else 0.0, job)


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    base, new, rounds, modes = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    results = {}
    for _ in range(rounds):
        for mode in modes:
            for name, exe in (("base", base), ("new", new)):
                results.setdefault((mode, name), []).append(run(exe, mode, env))
    for mode in modes:
        for name in ("base", "new"):
            rows = results[(mode, name)]
            med = lambda i: statistics.median(row[i] for row in rows)
            low = lambda i: min(row[i] for row in rows)
            print(f"{mode:22} {name:5} wall/item {med(0):9.2f} ns (min {low(0):9.2f})"
                  f"  rank0 cpu/item {med(1):9.2f} ns (min {low(1):9.2f})"
                  f"  speedup {med(2):5.2f}x (max {max(row[2] for row in rows):5.2f})"
                  f"  job cpu {med(3):6.3f} s")


if __name__ == "__main__":
    main()
