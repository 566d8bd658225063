"""Benchmark: a 10 x 10 (P, T) theory sweep with 100 times, serial and on a 2-worker local Dask cluster.

    python benchmarks/bench_sweep.py [--repeats 3] [--modes 100]

Prints the median wall time of each mode (no cache, so every run computes all 100 points; the
cluster start-up is timed separately and not included in the Dask figure) and checks that both
modes give identical results.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

import numpy as np
import xarray as xr

from kdmft.sweep import SweepConfig, run_sweep


def config(modes: int) -> SweepConfig:
    return SweepConfig(problem={"modes": modes, "alpha": 0.5, "samples": np.geomspace(20, 400, 10).round().astype(int)
                                .tolist(), "temperature": np.geomspace(1e-3, 0.3, 10).tolist(), "weight_decay": 0.0},
                       times=np.logspace(-2, 4, 100), serial=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--modes", type=int, default=100)
    args = ap.parse_args()
    cfg = config(args.modes)
    serial_times, dask_times = [], []
    ref = None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        ref = run_sweep(cfg, cache=False, write=False)
        serial_times.append(time.perf_counter() - t0)
    from distributed import Client, LocalCluster

    t0 = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        client.run(lambda: __import__("kdmft.sweep"))  # warm the workers' imports
        startup = time.perf_counter() - t0
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            par = run_sweep(cfg, cache=False, write=False, client=client)
            dask_times.append(time.perf_counter() - t0)
    xr.testing.assert_identical(ref, par)
    print(f"10 x 10 (P, T) theory sweep, N = {args.modes} modes, 100 times, t* per point; "
          f"median of {args.repeats} runs")
    print(f"  serial:                     {statistics.median(serial_times):7.2f} s  (runs: "
          + ", ".join(f"{t:.2f}" for t in serial_times) + ")")
    print(f"  Dask LocalCluster, 2 procs: {statistics.median(dask_times):7.2f} s  (runs: "
          + ", ".join(f"{t:.2f}" for t in dask_times) + f"; cluster start-up {startup:.2f} s not included)")
    print("  results identical: yes")


if __name__ == "__main__":
    main()
