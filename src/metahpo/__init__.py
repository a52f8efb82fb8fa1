"""metahpo: learn from past hyperparameter sweeps which hyperparameters to use on a new task."""

__version__ = "0.1.0"
