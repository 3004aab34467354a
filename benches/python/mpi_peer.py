"""The mpi4py.futures peer of benches/mpi.rs: one job of one workload.

Usage: mpirun -n N python3 -m mpi4py.futures mpi_peer.py WORKLOAD TIMED

Rank 0 runs this script (the other ranks are the shared pool that
`python3 -m mpi4py.futures` makes of them); it starts an `MPIPoolExecutor`
over those ranks, warms it up and, if TIMED is 1, times the workload once
(with 0 it stops there: the idle job, whose CPU the bench subtracts). It
prints the lines benches/mpi.rs reads from its own rank 0:

    info MAX_WORKERS WORKER_RANKS
    measured KEY ITEMS WALL_SECONDS CPU_SECONDS

CPU_SECONDS is this process's user + system time over the timed part
(`getrusage(RUSAGE_SELF)`, every thread). The workloads:

* `noop`: `submit(noop, 0).result()`, 300 times to warm up, then 3 000
  timed (about a second at mpi4py's ~300 us a round trip);
* `primes`: `is_prime` by trial division over range(10, 2 500 000),
  first sequentially on rank 0 before the pool starts (KEY `sequential`),
  then through `map(..., chunksize=10000)` twice (KEY `first`, then KEY
  `pool`, the figure benches/mpi.rs judges: a pool's second map);
* `map`: `map(double, range(2_000_000), chunksize=10000)`, twice likewise.
"""

import math
import resource
import sys
import time

from mpi4py import MPI
from mpi4py.futures import MPIPoolExecutor

NOOP_WARMUP = 300
NOOP_TASKS = 3_000
PRIMES = range(10, 2_500_000)
# pi(2 500 000) = 183 072, less 2, 3, 5 and 7.
PRIMES_IN_RANGE = 183_068
DOUBLES = 2_000_000
# 250 chunks of the primes' range over 2 workers; mpi4py's own default, 1,
# sends every item as a message of its own.
CHUNKSIZE = 10_000


def noop(x):
    return x


def is_prime(n):
    """Trial division, as examples/mpi_primes.rs does it."""
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    for divisor in range(3, math.isqrt(n) + 1, 2):
        if n % divisor == 0:
            return False
    return True


def double(x):
    return x * 2


def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(key, items, work):
    cpu_before = cpu()
    start = time.perf_counter()
    work()
    wall = time.perf_counter() - start
    print(f"measured {key} {items} {wall:e} {cpu() - cpu_before:e}", flush=True)


def main():
    workload, timed_run = sys.argv[1], sys.argv[2] == "1"
    if workload == "primes" and timed_run:
        # Before the pool, as the Rust side does.
        def sequential():
            assert sum(1 for n in PRIMES if is_prime(n)) == PRIMES_IN_RANGE

        timed("sequential", len(PRIMES), sequential)
    ranks = MPI.COMM_WORLD.Get_size() - 1
    with MPIPoolExecutor() as pool:
        print(f"info {ranks} {ranks}", flush=True)
        if workload == "noop":
            for _ in range(NOOP_WARMUP):
                assert pool.submit(noop, 0).result() == 0

            def run():
                for _ in range(NOOP_TASKS):
                    assert pool.submit(noop, 0).result() == 0

            if timed_run:
                timed("pool", NOOP_TASKS, run)
        elif workload == "primes":
            def run():
                flags = pool.map(is_prime, PRIMES, chunksize=CHUNKSIZE)
                assert sum(flags) == PRIMES_IN_RANGE

            # The same map first, as the Rust side does: the timed one is
            # the pool's second.
            if timed_run:
                timed("first", len(PRIMES), run)
                timed("pool", len(PRIMES), run)
            else:
                run()
        elif workload == "map":
            def run():
                values = pool.map(double, range(DOUBLES), chunksize=CHUNKSIZE)
                assert sum(values) == DOUBLES * (DOUBLES - 1)

            if timed_run:
                timed("first", DOUBLES, run)
                timed("pool", DOUBLES, run)
            else:
                run()
        else:
            sys.exit(f"mpi_peer.py: unknown workload {workload!r}")


if __name__ == "__main__":
    main()
