"""Evaluation metrics."""

from .rank import FeatureDistance, RankResult, evaluate_rank, protocol_ranking

__all__ = ["FeatureDistance", "RankResult", "evaluate_rank", "protocol_ranking"]
