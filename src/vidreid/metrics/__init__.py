"""Evaluation metrics."""

from .rank import FeatureDistance, RankResult, evaluate_rank

__all__ = ["FeatureDistance", "RankResult", "evaluate_rank"]
