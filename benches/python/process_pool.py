"""Python's process pools, the peers of benches/process_pool.rs.

Usage: python3 process_pool.py PEER SAMPLES WORKLOAD=UNITS...

PEER is `spawn` or `fork` (a ProcessPoolExecutor with that multiprocessing
start method) or `pool` (a multiprocessing.Pool with the default start
method, whose name is printed first as `method NAME`). Each WORKLOAD runs
once to warm up and SAMPLES timed times; for each, one line
`WORKLOAD MEDIAN_SECONDS` (the median seconds of one run of UNITS) is
printed. The workloads:

* `round_trip`: submit one no-op task, wait for its result, repeat, on a
  pool of 1 worker;
* `submit_all`: submit UNITS no-op tasks, then take every result, 2 workers;
* `map`: `list(pool.map(double, range(UNITS), chunksize=1000))`, 2
  workers;
* `map_auto`: the same with the pool's own chunk size (`pool` only: a
  ProcessPoolExecutor's default is 1);
* `start`: a pool of 2 workers, one no-op task, its result, shutdown
  (UNITS is 1);
* `bytes`: a `bytes` object of UNITS bytes to a worker and back (identity),
  1 worker.
"""

import multiprocessing
import multiprocessing.pool
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def noop(i):
    return i


def double(x):
    return x * 2


def identity(data):
    return data


class Executor:
    """concurrent.futures.ProcessPoolExecutor with one start method."""

    def __init__(self, method):
        self.context = multiprocessing.get_context(method)

    def start(self, workers):
        return ProcessPoolExecutor(workers, mp_context=self.context)

    @staticmethod
    def submit(pool, fn, arg):
        """Starts fn(arg); returns the function that waits for its result."""
        return pool.submit(fn, arg).result

    @staticmethod
    def map(pool, fn, items, chunksize):
        return pool.map(fn, items, chunksize=chunksize)

    @staticmethod
    def stop(pool):
        pool.shutdown()


class Pool:
    """multiprocessing.Pool with the default start method."""

    @staticmethod
    def start(workers):
        return multiprocessing.pool.Pool(workers)

    @staticmethod
    def submit(pool, fn, arg):
        return pool.apply_async(fn, (arg,)).get

    @staticmethod
    def map(pool, fn, items, chunksize):
        return pool.map(fn, items, chunksize)

    @staticmethod
    def stop(pool):
        pool.close()
        pool.join()


def timed(run, samples):
    run()  # warm-up
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def with_pool(peer, workers, body, samples):
    """The median of `body(pool)` on one pool started beforehand."""
    pool = peer.start(workers)
    try:
        return timed(lambda: body(pool), samples)
    finally:
        peer.stop(pool)


def round_trip(peer, units, samples):
    def run(pool):
        for i in range(units):
            assert peer.submit(pool, noop, i)() == i

    return with_pool(peer, 1, run, samples)


def submit_all(peer, units, samples):
    def run(pool):
        results = [peer.submit(pool, noop, i) for i in range(units)]
        assert sum(result() for result in results) == units * (units - 1) // 2

    return with_pool(peer, 2, run, samples)


def map_chunked(peer, units, samples, chunksize=1000):
    def run(pool):
        out = list(peer.map(pool, double, range(units), chunksize))
        assert len(out) == units and out[-1] == 2 * (units - 1)

    return with_pool(peer, 2, run, samples)


def map_auto(peer, units, samples):
    if not isinstance(peer, Pool):
        return None
    return map_chunked(peer, units, samples, chunksize=None)


def start(peer, units, samples):
    def run():
        pool = peer.start(2)
        try:
            assert peer.submit(pool, noop, 7)() == 7
        finally:
            peer.stop(pool)

    return timed(run, samples)


def big_bytes(peer, units, samples):
    data = b"\x07" * units

    def run(pool):
        assert len(peer.submit(pool, identity, data)()) == units

    return with_pool(peer, 1, run, samples)


WORKLOADS = {
    "round_trip": round_trip,
    "submit_all": submit_all,
    "map": map_chunked,
    "map_auto": map_auto,
    "start": start,
    "bytes": big_bytes,
}


def main():
    name, samples = sys.argv[1], int(sys.argv[2])
    if name == "pool":
        peer = Pool()
        print("method", multiprocessing.get_start_method(), flush=True)
    else:
        peer = Executor(name)
    for arg in sys.argv[3:]:
        workload, units = arg.split("=")
        median = WORKLOADS[workload](peer, int(units), samples)
        if median is not None:
            print(workload, median, flush=True)


if __name__ == "__main__":
    main()
