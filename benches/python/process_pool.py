"""Python's ProcessPoolExecutor, the peer of benches/process_pool.rs.

Usage: python3 process_pool.py METHOD SAMPLES WORKLOAD=UNITS...

METHOD is a multiprocessing start method (`spawn`, `fork`). Each WORKLOAD
runs once to warm up and SAMPLES timed times; for each, one line
`WORKLOAD MEDIAN_SECONDS` (the median seconds of one run of UNITS) is
printed. The workloads:

* `round_trip`: submit one no-op task, wait for its result, repeat, on a
  pool of 1 worker;
* `submit_all`: submit UNITS no-op tasks, then take every result, 2 workers;
* `map`: `list(executor.map(double, range(UNITS), chunksize=1000))`, 2
  workers;
* `start`: `ProcessPoolExecutor(2)`, one no-op task, its result, shutdown
  (UNITS is 1);
* `bytes`: a `bytes` object of UNITS bytes to a worker and back (identity),
  1 worker.
"""

import multiprocessing
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


def timed(run, samples):
    run()  # warm-up
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def round_trip(ctx, units, samples):
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        def run():
            for i in range(units):
                assert pool.submit(noop, i).result() == i
        return timed(run, samples)


def submit_all(ctx, units, samples):
    with ProcessPoolExecutor(2, mp_context=ctx) as pool:
        def run():
            futures = [pool.submit(noop, i) for i in range(units)]
            assert sum(f.result() for f in futures) == units * (units - 1) // 2
        return timed(run, samples)


def map_chunked(ctx, units, samples):
    with ProcessPoolExecutor(2, mp_context=ctx) as pool:
        def run():
            out = list(pool.map(double, range(units), chunksize=1000))
            assert len(out) == units and out[-1] == 2 * (units - 1)
        return timed(run, samples)


def start(ctx, units, samples):
    def run():
        with ProcessPoolExecutor(2, mp_context=ctx) as pool:
            assert pool.submit(noop, 7).result() == 7
    return timed(run, samples)


def big_bytes(ctx, units, samples):
    data = b"\x07" * units
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        def run():
            assert len(pool.submit(identity, data).result()) == units
        return timed(run, samples)


WORKLOADS = {
    "round_trip": round_trip,
    "submit_all": submit_all,
    "map": map_chunked,
    "start": start,
    "bytes": big_bytes,
}


def main():
    method, samples = sys.argv[1], int(sys.argv[2])
    ctx = multiprocessing.get_context(method)
    for arg in sys.argv[3:]:
        name, units = arg.split("=")
        median = WORKLOADS[name](ctx, int(units), samples)
        print(name, median, flush=True)


if __name__ == "__main__":
    main()
