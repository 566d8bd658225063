"""Benchmark of the time-domain DMFT solver in the paper's setting, and its convergence table.

How to run (repository root, package installed)::

    python benchmarks/bench_time_domain.py            # 3 repeats + convergence table, ~1-2 min
    python benchmarks/bench_time_domain.py --repeats 5

What is measured
----------------
1. Wall time of ``kdmft.learning_curve(problem, times, method="time-domain", dt=1e-2)`` for
   ``Problem.power_law(modes=100, alpha=0.5, samples=100, weight_decay=0.1, temperature=0.05,
   label_noise_var=0.1)`` (λ_k = k^-3/2, N = P = 100) on 60 log-spaced times in [0.1, 10]
   (grid t up to 10, n_t = 1001; includes the Richardson error estimate at 2 dt). Target < 30 s.
   Median (min, max) of ``--repeats`` runs after one warm-up call.
2. The largest relative deviation from the Laplace solver over all six parts on those times.
3. Convergence: the same deviation (absolute, max over parts and times) for dt = 0.04 ... 0.005,
   and the observed order log2(dev(2 dt) / dev(dt)).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np

import kdmft
from kdmft.results import PARTS
from kdmft.theory.timedomain import timedomain_parts

# Benchmarks time the solvers; the finite-size caveat of their near-threshold problems is
# documented (README, THEORY.md section 7) and not repeated here.
warnings.filterwarnings("ignore", category=kdmft.FiniteSizeWarning)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    p = kdmft.Problem.power_law(100, 0.5, 100, weight_decay=0.1, temperature=0.05, label_noise_var=0.1)
    times = np.logspace(-1, 1, 60)
    ref = kdmft.learning_curve(p, times)
    kdmft.learning_curve(p, times[:3], method="time-domain", dt=1e-2)  # warm-up
    walls = []
    ds = None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        ds = kdmft.learning_curve(p, times, method="time-domain", dt=1e-2)
        walls.append(time.perf_counter() - t0)
    dev = max(float(np.max(np.abs(ds[k].values / ref[k].values - 1))) for k in PARTS if np.all(ref[k].values > 0))
    print("time-domain solver, λ_k = k^-3/2, N = P = 100, g = 0.1, T = 0.05, σ² = 0.1, dt = 1e-2, t in [0.1, 10]")
    print(f"  wall time: median {statistics.median(walls):.2f} s (min {min(walls):.2f}, max {max(walls):.2f}, "
          f"{args.repeats} runs; target < 30 s)")
    print(f"  max relative deviation from the Laplace solver (all parts): {dev:.2e}  (contract: < 1e-2)")
    est = float(np.max(ds.test_error_err.values / ds.test_error.values))
    print(f"  solver's own relative error estimate (test error, Richardson): {est:.2e}")
    print("\nconvergence (max |time-domain - Laplace| over parts and times):")
    print(f"  {'dt':>8} {'n_t':>6} {'wall [s]':>9} {'max abs dev':>12} {'max rel dev':>12} {'order':>6}")
    prev = None
    lref = {k: ref[k].values for k in PARTS}
    for dt in (0.04, 0.02, 0.01, 0.005):
        t0 = time.perf_counter()
        v, _ = timedomain_parts(p.eigenvalues, p.task_power, 100, 0.1, 0.05, 0.1, times, dt=dt,
                                estimate_error=False)
        wall = time.perf_counter() - t0
        absdev = max(float(np.max(np.abs(v[k] - lref[k]))) for k in PARTS)
        reldev = max(float(np.max(np.abs(v[k] / lref[k] - 1))) for k in PARTS)
        order = "" if prev is None else f"{np.log2(prev / absdev):.2f}"
        print(f"  {dt:>8.3g} {int(round(10 / dt)) + 1:>6} {wall:>9.2f} {absdev:>12.3e} {reldev:>12.3e} {order:>6}")
        prev = absdev


if __name__ == "__main__":
    main()
