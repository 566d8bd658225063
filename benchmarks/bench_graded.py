"""Benchmark of the graded (non-uniform) time grid: cost against the horizon, and accuracy.

How to run (repository root, package installed)::

    python benchmarks/bench_graded.py               # 3 repeats, ~1 min
    python benchmarks/bench_graded.py --repeats 5

What is measured (λ_k = k^-3/2, N = P = 100, g = 0.1, T = 0.05, σ² = 0.1; 60 log-spaced times)
-------------------------------------------------------------------------------------------
1. Short horizon t in [0.1, 10] with temperature annealing T(t) = T e^{-t/2} and a cosine weight
   decay g(t) = g (0.1 + 0.9 (1 + cos(π t/10))/2): wall time of the graded grid and of the
   uniform grid at dt = 1e-2 (median of ``--repeats`` runs, and their ratio), and the largest
   relative deviation between them over all six parts, beside the uniform grid's own
   Richardson error estimate.
2. Horizon t_max = 1e2 ... 1e6 (same problem; T(t) = T e^{-t/t_max·10}, a warm-up of η over
   t_max/100): wall time of the graded grid per horizon. The uniform grid would need t_max/dt
   steps (refused above 20000: t_max = 200 at dt = 1e-2).
3. Constant protocol on t in [0.1, 1e6]: the largest relative deviation from the Laplace solver.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np

import kdmft
from kdmft.results import PARTS
from kdmft.schedules import Schedule, Shape

warnings.filterwarnings("ignore", category=kdmft.FiniteSizeWarning)


def _median_wall(fn, repeats: int):
    walls, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls), out


def _max_rel(a, b) -> float:
    return max(float(np.max(np.abs(a[k].values / b[k].values - 1))) for k in PARTS if np.all(b[k].values > 0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    p = kdmft.Problem.power_law(100, 0.5, 100, weight_decay=0.1, temperature=0.05, label_noise_var=0.1)

    print("1. short horizon, t in [0.1, 10], T(t) = T e^{-t/2}, cosine weight decay")
    times = np.logspace(-1, 1, 60)
    sch = Schedule(temperature=Shape("exponential", {"rate": 0.5}),
                   weight_decay=Shape("cosine", {"duration": 10.0, "floor": 0.1}))
    kdmft.learning_curve(p, times[:3], method="time-domain", grid="graded", schedule=sch)   # warm-up
    wg, graded = _median_wall(lambda: kdmft.learning_curve(p, times, method="time-domain", grid="graded",
                                                           schedule=sch), args.repeats)
    wu, uniform = _median_wall(lambda: kdmft.learning_curve(p, times, method="time-domain", dt=1e-2,
                                                            schedule=sch), args.repeats)
    est = max(float(np.max(uniform[k + "_err"].values / uniform[k].values)) for k in PARTS
              if np.all(uniform[k].values > 0))
    print(f"   graded  : median {wg:.2f} s;  uniform dt = 1e-2: median {wu:.2f} s;  ratio uniform/graded {wu / wg:.1f}")
    print(f"   max relative deviation graded vs uniform: {_max_rel(graded, uniform):.2e} "
          f"(uniform grid's own estimate: {est:.2e})")
    gest = float(np.max(graded.test_error_err.values / graded.test_error.values))
    print(f"   graded grid's own relative error estimate of the test error: {gest:.2e}")

    print("\n2. horizon (60 times in [0.1, t_max]; T(t) = T e^{-10 t/t_max}, η warm-up over t_max/100)")
    print(f"   {'t_max':>8} {'wall [s]':>9} {'uniform steps at dt=1e-2':>25}")
    for tmax in (1e2, 1e3, 1e4, 1e5, 1e6):
        s = Schedule(temperature=Shape("exponential", {"rate": 10.0 / tmax}),
                     learning_rate=Shape("warmup", {"duration": tmax / 100, "start": 0.1}))
        tt = np.geomspace(0.1, tmax, 60)
        w, _ = _median_wall(lambda s=s, tt=tt: kdmft.learning_curve(p, tt, method="time-domain", grid="graded",
                                                                    schedule=s), args.repeats)
        print(f"   {tmax:>8.0e} {w:>9.2f} {tmax / 1e-2:>25.0e}")

    print("\n3. constant protocol, t in [0.1, 1e6]")
    tt = np.geomspace(0.1, 1e6, 60)
    ref = kdmft.learning_curve(p, tt)
    w, g = _median_wall(lambda: kdmft.learning_curve(p, tt, method="time-domain", grid="graded"), args.repeats)
    print(f"   graded median {w:.2f} s; max relative deviation from the Laplace solver: {_max_rel(g, ref):.2e}")


if __name__ == "__main__":
    main()
