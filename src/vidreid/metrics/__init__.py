"""Evaluation metrics."""

from .rank import RankResult, evaluate_rank

__all__ = ["RankResult", "evaluate_rank"]
