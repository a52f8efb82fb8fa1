"""Importing this package registers every strategy in ``metahpo.hpo.base.STRATEGIES``."""

from metahpo.hpo.strategies import (  # noqa: F401
    grid,
    random_search,
    tpe,
    zero_shot,
    average_rank,
    portfolio,
    successive_halving,
    lc_transfer,
    gp_bo,
    transfer_bo,
    weighted_portfolio,
)
