"""Wall-time benchmarks of the DMFT learning curve and the exact simulation.

How to run (from the repository root, with the package installed)::

    python benchmarks/bench_core.py              # full run (5 repeats, includes N = 1e5), ~2-3 min
    python benchmarks/bench_core.py --quick      # 3 repeats, skips N = 1e5, ~20 s
    python benchmarks/bench_core.py --repeats 9  # more repeats on a noisy machine

What is measured
----------------
1. ``kdmft.learning_curve(problem, times)`` with the full bias / noise / thermal split (test and
   train parts) on ``times = np.logspace(-2, 4, 100)`` for
   ``Problem.power_law(modes=N, alpha=0.5, samples=P, weight_decay=1e-3, temperature=0.05,
   label_noise_var=0.1)`` at (N, P) = (100, 100), (1e4, 1e3), (1e5, 1e4) and (1e5, 100).
   Targets: N = P = 100 under 0.2 s; N = 1e5 under 10 s.
2. ``kdmft.simulate(problem, times, realizations=R, seed=0)`` throughput in data sets per second
   at N = P = 100 on 50 log-spaced times, for the isotropic task and for a power-law task
   (task_exponent = 0.5). Target: at least 500 data sets / s.

Every figure is the median of ``--repeats`` runs (min and max are printed too); a single
untimed warm-up call comes first so that lazy imports and BLAS start-up are not counted (its
time is printed as "cold first call"). Timings are wall-clock (time.perf_counter) on whatever
machine runs this; on a shared machine compare medians and ratios, not single runs.
Speed is measured only here, never in the unit tests.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable

import numpy as np

import kdmft

CURVE_TIMES = np.logspace(-2, 4, 100)
SIM_TIMES = np.logspace(-2, 4, 50)
CURVE_TARGET_SMALL = 0.2   # seconds, N = P = 100
CURVE_TARGET_LARGE = 10.0  # seconds, N = 1e5
SIM_TARGET = 500.0         # data sets per second, N = P = 100


def _problem(modes: int, samples: int, task_exponent: float = 0.0) -> kdmft.Problem:
    return kdmft.Problem.power_law(modes=int(modes), alpha=0.5, samples=int(samples),
                                   weight_decay=1e-3, temperature=0.05, label_noise_var=0.1,
                                   task_exponent=task_exponent)


def _timings(fn: Callable[[], object], repeats: int) -> tuple[list[float], object]:
    """Wall times of ``repeats`` calls of ``fn`` and the last call's result."""
    out, res = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = fn()
        out.append(time.perf_counter() - t0)
    return out, res


def _fmt_s(x: float) -> str:
    return f"{x:8.3f}"


def _blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info
        info = threadpool_info()
        return ", ".join(f"{d.get('internal_api')}({d.get('num_threads')} threads)" for d in info) or "?"
    except Exception:  # noqa: BLE001 - informational only
        return "?"


def bench_curves(repeats: int, quick: bool) -> list[tuple]:
    cases = [(100, 100, CURVE_TARGET_SMALL), (10_000, 1_000, None)]
    if not quick:
        cases += [(100_000, 10_000, CURVE_TARGET_LARGE), (100_000, 100, CURVE_TARGET_LARGE)]
    rows = []
    for n, p, target in cases:
        prob = _problem(n, p)
        if n <= 1_000:
            kdmft.learning_curve(prob, CURVE_TIMES)  # warm-up (cheap cases only)
        times, ds = _timings(lambda prob=prob: kdmft.learning_curve(prob, CURVE_TIMES), repeats)
        rows.append((n, p, times, target, float(ds.test_error[-1]), float(np.max(ds.test_error_err))))
    return rows


def bench_sim(repeats: int, realizations: int) -> list[tuple]:
    rows = []
    for label, beta in (("isotropic", 0.0), ("power-law v_k=k^-0.5", 0.5)):
        prob = _problem(100, 100, task_exponent=beta)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", kdmft.HeavyTailWarning)
            kdmft.simulate(prob, SIM_TIMES, realizations=64, seed=0)  # warm-up
            times, sim = _timings(lambda prob=prob: kdmft.simulate(prob, SIM_TIMES, realizations=realizations,
                                                                   seed=0), repeats)
        theory = kdmft.learning_curve(prob, SIM_TIMES)
        # Sanity only (not a test): finite-size deviation at N = P = 100 is O(1/N), a few percent.
        dev = np.abs(sim.test_error.values - theory.test_error.values) / theory.test_error.values
        zs = np.abs(sim.test_error.values - theory.test_error.values) / sim.test_error_se.values
        rows.append((label, times, float(dev.max()), float(np.median(zs))))
    return rows


# Benchmarks time the solvers; the finite-size caveat of their near-threshold problems is
# documented (README, THEORY.md section 7) and not repeated here.
warnings.filterwarnings("ignore", category=kdmft.FiniteSizeWarning)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 repeats, skip N = 1e5, fewer data sets")
    ap.add_argument("--repeats", type=int, default=None, help="repeats per case (default 5, quick 3)")
    ap.add_argument("--realizations", type=int, default=None,
                    help="data sets per simulate() call (default 1024, quick 512)")
    args = ap.parse_args(argv)
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 5)
    if repeats < 1:
        ap.error("--repeats must be >= 1")
    realizations = args.realizations or (512 if args.quick else 1024)

    print(f"kdmft {kdmft.__version__}, numpy {np.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, BLAS: {_blas_info()}")
    print(f"repeats per case: {repeats}{'  (quick mode: N = 1e5 skipped)' if args.quick else ''}")

    t0 = time.perf_counter()
    kdmft.learning_curve(_problem(100, 100), CURVE_TIMES)
    print(f"cold first call learning_curve(N = P = 100): {time.perf_counter() - t0:.3f} s (not counted)")
    print()

    print("1. learning_curve: 100 times in [1e-2, 1e4], full bias/noise/thermal split (test + train)")
    print("   alpha = 0.5, g = 1e-3, T = 0.05, sigma^2 = 0.1")
    head = f"   {'N':>7} {'P':>7} | {'median s':>8} {'min s':>8} {'max s':>8} | {'target':>8} {'ok':>4} |" \
           f" {'E(1e4)':>9} {'max err est':>11}"
    print(head)
    print("   " + "-" * (len(head) - 3))
    for n, p, times, target, e_last, err in bench_curves(repeats, args.quick):
        med = statistics.median(times)
        tgt = f"< {target:g} s" if target else "-"
        ok = ("yes" if med < target else "NO") if target else ""
        print(f"   {n:>7} {p:>7} | {_fmt_s(med)} {_fmt_s(min(times))} {_fmt_s(max(times))} | {tgt:>8} {ok:>4} |"
              f" {e_last:9.5g} {err:11.2e}")
    print()

    print(f"2. simulate: N = P = 100, 50 times in [1e-2, 1e4], {realizations} data sets per call, "
          f"same g, T, sigma^2")
    head = f"   {'task':<22} | {'median s':>8} {'min s':>8} {'max s':>8} | {'sets/s (median)':>15} " \
           f"{'min':>7} {'max':>7} | {'target':>7} {'ok':>4} | {'max|sim-th|/th':>14}"
    print(head)
    print("   " + "-" * (len(head) - 3))
    for label, times, dev, _z in bench_sim(repeats, realizations):
        med = statistics.median(times)
        rate = realizations / med
        print(f"   {label:<22} | {_fmt_s(med)} {_fmt_s(min(times))} {_fmt_s(max(times))} | {rate:15.0f} "
              f"{realizations / max(times):7.0f} {realizations / min(times):7.0f} | {'>= 500':>7} "
              f"{'yes' if rate >= SIM_TARGET else 'NO':>4} | {dev:14.2%}")
    print("   (last column: finite-size deviation simulation vs DMFT, a sanity check, expected O(1/N))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
