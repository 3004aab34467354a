"""Python's ThreadPoolExecutor, the peer of benches/thread_pool.rs.

Usage: python3 thread_pool.py MODE TASKS SAMPLES

MODE is `round_trip` (submit one no-op task, wait for its result, repeat),
`submit_all` (submit TASKS no-op tasks, then take every result) or `map`
(`list(executor.map(double, range(TASKS)))`). Runs one warm-up and SAMPLES
timed runs on a ThreadPoolExecutor(2), and prints the median seconds of one
run of TASKS tasks as a single number.
"""

import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def noop(i):
    return i


def double(x):
    return x * 2


def round_trip(pool, tasks):
    for i in range(tasks):
        pool.submit(noop, i).result()


def submit_all(pool, tasks):
    futures = [pool.submit(noop, i) for i in range(tasks)]
    for future in futures:
        future.result()


def map_all(pool, tasks):
    out = list(pool.map(double, range(tasks)))
    assert len(out) == tasks and out[-1] == 2 * (tasks - 1)


def main():
    mode, tasks, samples = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    run = {"round_trip": round_trip, "submit_all": submit_all, "map": map_all}[mode]
    with ThreadPoolExecutor(2) as pool:
        run(pool, tasks)  # warm-up: starts the threads
        times = []
        for _ in range(samples):
            start = time.perf_counter()
            run(pool, tasks)
            times.append(time.perf_counter() - start)
    print(statistics.median(times))


if __name__ == "__main__":
    main()
