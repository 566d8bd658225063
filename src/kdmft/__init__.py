"""kdmft: dynamical mean-field theory of learning curves in kernel / random-feature regression.

The main entry points:

- :class:`Problem` - spectrum, task, data size and training regime;
- :func:`learning_curve` - the typical-case (DMFT) test and train error over time;
- :func:`simulate` - exact finite-size simulation, averaged over data sets;
- :func:`optimal_stopping` - the best time to stop and the error there;
- :func:`run_sweep` / :func:`analyze` - parameter grids (Dask, resumable) and their report;
- :func:`mode_process` / :func:`simulate_modes` - single-mode processes, DMFT and exact.

See THEORY.md for the conventions and the equations.
"""

from ._version import __version__
from .analysis import PowerLawFit, fit_power_law, optimal_stopping
from .errors import (
    ConvergenceError,
    DivergenceWarning,
    FiniteSizeWarning,
    HeavyTailWarning,
    InvalidParameterError,
    KdmftError,
)
from .model import Problem, bayesian_to_langevin, langevin_to_bayesian
from .report import analyze
from .simulate import simulate, simulate_modes
from .sweep import SweepConfig, run_sweep
from .theory import learning_curve
from .theory.single_mode import mode_process

__all__ = [
    "__version__",
    "Problem",
    "learning_curve",
    "simulate",
    "optimal_stopping",
    "SweepConfig",
    "run_sweep",
    "analyze",
    "mode_process",
    "simulate_modes",
    "fit_power_law",
    "PowerLawFit",
    "bayesian_to_langevin",
    "langevin_to_bayesian",
    "KdmftError",
    "InvalidParameterError",
    "ConvergenceError",
    "DivergenceWarning",
    "FiniteSizeWarning",
    "HeavyTailWarning",
]
