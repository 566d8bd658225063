"""kdmft: dynamical mean-field theory of learning curves in kernel / random-feature regression.

The main entry points:

- :class:`Problem` - spectrum, task, data size and training regime;
- :func:`learning_curve` - the typical-case (DMFT) test and train error over time;
- :func:`simulate` - exact finite-size simulation, averaged over data sets;
- :func:`optimal_stopping` - the best time to stop and the error there.

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
from .simulate import simulate
from .theory import learning_curve

__all__ = [
    "__version__",
    "Problem",
    "learning_curve",
    "simulate",
    "optimal_stopping",
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
