"""What is measured: objectives, their search spaces and evaluation results."""

from bilevel.objectives.base import (
    EvalResult,
    Objective,
    UnknownObjective,
    make_objective,
    objective_for,
    register,
    registered,
    resolve,
)
from bilevel.objectives.space import Param, SearchSpace, SpaceError

__all__ = [
    "EvalResult",
    "Objective",
    "Param",
    "SearchSpace",
    "SpaceError",
    "UnknownObjective",
    "make_objective",
    "objective_for",
    "register",
    "registered",
    "resolve",
]
