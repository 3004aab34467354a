"""Python's multiprocessing.Pool, the peer of benches/scaling.rs.

Usage: python3 scaling.py SAMPLES WORKERS WORKLOAD...
       python3 scaling.py one WORKLOAD CONFIG WORKERS

The first form runs every measurement SAMPLES times, each in a fresh
Python process (the second form, which it starts), the measurements
interleaved round by round, and prints one line per measurement:

    sample WORKLOAD CONFIG WALL_SECONDS SELF_CPU_SECONDS CHILDREN_CPU_SECONDS

SELF is the CPU time (user + system) the measuring process spent from just
before the pool was started until after `pool.close(); pool.join()`, from
`resource.getrusage(RUSAGE_SELF)`; CHILDREN is that of the workers, from
`RUSAGE_CHILDREN`, which counts a child once it has been reaped (by the
join). WALL is the map alone (0 for `idle`). The workloads:

* `primes`: `is_prime` over range(10, 2 500 000), the primes seed; the
  result is the count of primes (183 068);
* `doubles`: `x * 2` over range(2 000 000), summed.

The configurations:

* `sequential`: `map(f, items)` in the process itself, no pool (SELF is
  then the work itself);
* `idle`: `Pool(WORKERS)`, one tiny map (the same warm-up the pool
  configurations get), `close()`, `join()`: the pool's fixed cost, which
  benches/scaling.rs subtracts from the others;
* `pool:default`: `Pool(WORKERS).map(f, items)` with map's own chunk size
  (len(items) / (4 * WORKERS), rounded up: 309 062 items for primes on 2
  workers);
* `pool:10000`: the same with `chunksize=10000`, a size users pick by hand;
* `warm:default`, `warm:10000`: the same map twice on one pool, the second
  measured alone: WALL is its wall time, SELF the measuring process's CPU
  around it, CHILDREN the workers' around it, from
  `/proc/PID/task/TID/schedstat` (the nanoseconds the kernel ran each
  thread), since `getrusage` counts a child only once it is reaped. Nothing
  is subtracted from these.

The start method is multiprocessing's default (fork on Linux before
Python 3.14); its name is printed first as `method NAME`.
"""

import math
import multiprocessing
import os
import resource
import subprocess
import sys
import time

PRIMES = range(10, 2_500_000)
PRIMES_IN_RANGE = 183_068
DOUBLES = range(2_000_000)
CONFIGS = ["sequential", "idle", "pool:default", "pool:10000", "warm:default", "warm:10000"]


def is_prime(n):
    """Trial division by the odd numbers up to the square root, as the
    tutorials write it (an even n, 2 included, is not prime)."""
    if n % 2 == 0:
        return False
    for divisor in range(3, math.isqrt(n) + 1, 2):
        if n % divisor == 0:
            return False
    return True


def double(x):
    return x * 2


WORKLOADS = {
    # function, items, expected sum of the results
    "primes": (is_prime, PRIMES, PRIMES_IN_RANGE),
    "doubles": (double, DOUBLES, len(DOUBLES) * (len(DOUBLES) - 1)),
}


def cpu(who):
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def workers_cpu(pool):
    """The CPU seconds the pool's worker processes have spent so far."""
    total = 0
    for process in pool._pool:
        tasks = f"/proc/{process.pid}/task"
        for task in os.listdir(tasks):
            with open(f"{tasks}/{task}/schedstat") as schedstat:
                total += int(schedstat.read().split()[0])
    return total * 1e-9


def warm(f, items, expected, config, workers):
    """The second of two maps on one pool; prints WALL SELF CHILDREN."""
    chunksize = config.split(":")[1]
    chunksize = None if chunksize == "default" else int(chunksize)
    pool = multiprocessing.Pool(workers)
    assert sum(pool.map(f, items, chunksize=chunksize)) == expected
    workers_before = workers_cpu(pool)
    self_before = cpu(resource.RUSAGE_SELF)
    start = time.perf_counter()
    total = sum(pool.map(f, items, chunksize=chunksize))
    wall = time.perf_counter() - start
    parent = cpu(resource.RUSAGE_SELF) - self_before
    children = workers_cpu(pool) - workers_before
    assert total == expected, (config, total)
    pool.close()
    pool.join()
    print(wall, parent, children, flush=True)


def one(workload, config, workers):
    """One measurement in this process; prints WALL SELF CHILDREN."""
    f, items, expected = WORKLOADS[workload]
    if config.startswith("warm:"):
        warm(f, items, expected, config, workers)
        return
    self_before = cpu(resource.RUSAGE_SELF)
    children_before = cpu(resource.RUSAGE_CHILDREN)
    wall = 0.0
    if config == "sequential":
        start = time.perf_counter()
        total = sum(map(f, items))
        wall = time.perf_counter() - start
        assert total == expected, (workload, total)
    else:
        pool = multiprocessing.Pool(workers)
        pool.map(is_prime, range(4 * workers), chunksize=1)
        if config != "idle":
            chunksize = config.split(":")[1]
            chunksize = None if chunksize == "default" else int(chunksize)
            start = time.perf_counter()
            total = sum(pool.map(f, items, chunksize=chunksize))
            wall = time.perf_counter() - start
            assert total == expected, (workload, config, total)
        pool.close()
        pool.join()
    parent = cpu(resource.RUSAGE_SELF) - self_before
    children = cpu(resource.RUSAGE_CHILDREN) - children_before
    print(wall, parent, children, flush=True)


def main():
    if sys.argv[1] == "one":
        one(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    samples, workers = int(sys.argv[1]), int(sys.argv[2])
    workloads = sys.argv[3:]
    print("method", multiprocessing.get_start_method(), flush=True)
    for _ in range(samples):
        for workload in workloads:
            for config in CONFIGS:
                # `idle` does not depend on the workload: once per round.
                if config == "idle" and workload != workloads[0]:
                    continue
                output = subprocess.run(
                    [sys.executable, __file__, "one", workload, config, str(workers)],
                    check=True,
                    stdout=subprocess.PIPE,
                    text=True,
                ).stdout
                print("sample", workload, config, output.strip(), flush=True)


if __name__ == "__main__":
    main()
