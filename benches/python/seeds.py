"""The seed programs in Python, the peers of benches/seeds.rs.

Usage: python3 seeds.py WORKERS SAMPLES PROGRAM...

The programs are those of the tutorials in shared/seeds, timed the same
way as their Rust versions: each pool is started (and its workers woken by
a tiny map) before the timed runs, and SAMPLES runs of the whole program
follow, with no warm-up run (each takes seconds). For each PROGRAM one line
`PROGRAM MEDIAN_SECONDS` is printed. The programs:

* `is_prime_big`: `ProcessPoolExecutor(WORKERS).map(is_prime, PRIMES,
  chunksize=1)` over the 100 integers from 112 272 535 095 293;
* `primes_sequential`: the primes in range(10, 2 500 000), one by one;
* `primes_pool`: the same through `multiprocessing.Pool(WORKERS).map`
  (its own chunk size);
* `factors_pool`: the prime factors of 20 integers through
  `multiprocessing.Pool(WORKERS).map` (its own chunk size).
"""

import itertools
import math
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor

BIG_FIRST = 112_272_535_095_293
BIG = range(BIG_FIRST, BIG_FIRST + 100)
PRIMES_RANGE = range(10, 2_500_000)
# The 20 integers of the tutorial's printed run (it draws them at random).
TO_FACTOR = [
    5999312, 27175366, 13193645, 11026294, 30474659, 11600878, 12645941,
    20106508, 25179463, 15382779, 49595626, 6147277, 44304094, 41354114,
    17934710, 39763829, 38295778, 11053859, 6658471, 4971588,
]


def is_prime(n):
    """Trial division by the odd numbers up to the square root, as the
    tutorials write it (an even n, 2 included, is not prime)."""
    if n % 2 == 0:
        return False
    for divisor in range(3, math.isqrt(n) + 1, 2):
        if n % divisor == 0:
            return False
    return True


def prime_factor(value):
    """The tutorial's recursive factorisation: the first divisor found
    splits the value in two, each factored again."""
    for divisor in range(2, value - 1):
        quotient, remainder = divmod(value, divisor)
        if not remainder:
            return prime_factor(divisor) + prime_factor(quotient)
    return [value]


def timed(run, samples):
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def is_prime_big(workers, samples):
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(is_prime, range(workers * 4)))

        def run():
            flags = list(pool.map(is_prime, BIG, chunksize=1))
            assert len(flags) == len(BIG)

        return timed(run, samples)


def primes_sequential(_workers, samples):
    def run():
        primes = [n for n in PRIMES_RANGE if is_prime(n)]
        assert primes[0] == 11

    return timed(run, samples)


def primes_pool(workers, samples):
    with multiprocessing.Pool(workers) as pool:
        pool.map(is_prime, range(workers * 4))

        def run():
            flags = pool.map(is_prime, PRIMES_RANGE)
            primes = list(itertools.compress(PRIMES_RANGE, flags))
            assert primes[0] == 11

        return timed(run, samples)


def factors_pool(workers, samples):
    with multiprocessing.Pool(workers) as pool:
        pool.map(prime_factor, range(2, 2 + workers * 4))

        def run():
            for value, factors in zip(TO_FACTOR, pool.map(prime_factor, TO_FACTOR)):
                assert math.prod(factors) == value

        return timed(run, samples)


PROGRAMS = {
    "is_prime_big": is_prime_big,
    "primes_sequential": primes_sequential,
    "primes_pool": primes_pool,
    "factors_pool": factors_pool,
}


def main():
    workers, samples = int(sys.argv[1]), int(sys.argv[2])
    for name in sys.argv[3:]:
        print(name, PROGRAMS[name](workers, samples), flush=True)


if __name__ == "__main__":
    main()
