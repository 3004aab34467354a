"""Python's pools' memory over a long map, the peer of benches/memory.rs.

Usage: python3 memory.py MODE ITEMS WORKERS

MODE is `thread_pool` (`ThreadPoolExecutor(WORKERS).map(double,
range(ITEMS))`) or `process_pool` (`ProcessPoolExecutor(WORKERS)` with the
fork start method, `chunksize=1000`). The results are summed as they come.
Prints `PEAK_KIB SECONDS`: this process's own peak resident set (VmHWM in
/proc/self/status; the workers of a process pool are not counted) and the
time the map took.
"""

import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor


def double(x):
    return x * 2


def peak_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def main():
    mode, items, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    start = time.perf_counter()
    if mode == "thread_pool":
        with ThreadPoolExecutor(workers) as pool:
            total = sum(pool.map(double, range(items)))
    elif mode == "process_pool":
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            total = sum(pool.map(double, range(items), chunksize=1000))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    seconds = time.perf_counter() - start
    assert total == items * (items - 1)
    print(peak_kib(), seconds)


if __name__ == "__main__":
    main()
