"""Python's multiprocessing, the peer of benches/multiprocessing.rs (not named
multiprocessing.py, which would hide the module it measures).

Usage: python3 multiprocessing_peer.py SAMPLES LOCKS ITEMS INCREMENTS

The same workloads, measured the same way (one warm-up, SAMPLES runs,
median; wall time and CPU time of this process and its reaped children by
getrusage, per operation). One line per workload:
`NAME<TAB>WALL_NS<TAB>CPU_NS`. Default start method (fork on Linux up to
3.13).
"""

import multiprocessing as mp
import resource
import statistics
import sys
import time


def cpu_seconds():
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def measure(samples, ops, run):
    run()
    walls, cpus = [], []
    for _ in range(samples):
        start, cpu = time.perf_counter(), cpu_seconds()
        run()
        walls.append(time.perf_counter() - start)
        cpus.append(cpu_seconds() - cpu)
    return statistics.median(walls) * 1e9 / ops, statistics.median(cpus) * 1e9 / ops


def meet(gate, count):
    with gate.get_lock():
        gate.value += 1
    while gate.value < count:
        pass


def lock_loop(lock, gate, n):
    meet(gate, 2)
    for _ in range(n):
        lock.acquire()
        lock.release()


def produce(queue, n):
    for i in range(n):
        queue.put(i)


def increment(value, gate, n):
    meet(gate, 2)
    for _ in range(n):
        with value.get_lock():
            value.value += 1


def main():
    samples, locks, items, increments = (int(a) for a in sys.argv[1:5])
    rows = []
    lock = mp.Lock()

    def uncontended():
        for _ in range(locks):
            lock.acquire()
            lock.release()

    rows.append(("lock, uncontended", *measure(samples, locks, uncontended)))

    def contended():
        gate = mp.Value("I", 0)
        other = mp.Process(target=lock_loop, args=(lock, gate, locks))
        other.start()
        lock_loop(lock, gate, locks)
        other.join()

    rows.append(("lock, 2 processes", *measure(samples, 2 * locks, contended)))

    for capacity in (10, 1024):
        queue = mp.Queue(capacity)

        def hand_off():
            producer = mp.Process(target=produce, args=(queue, items))
            producer.start()
            for _ in range(items):
                queue.get()
            producer.join()

        rows.append((f"queue hand-off, capacity {capacity}", *measure(samples, items, hand_off)))

    value = mp.Value("q", 0)

    def values():
        gate = mp.Value("I", 0)
        other = mp.Process(target=increment, args=(value, gate, increments))
        other.start()
        increment(value, gate, increments)
        other.join()

    rows.append(("value += 1 under its lock, 2 processes", *measure(samples, 2 * increments, values)))
    for name, wall, cpu in rows:
        print(f"{name}\t{wall:.1f}\t{cpu:.1f}")


if __name__ == "__main__":
    main()
