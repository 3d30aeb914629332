"""Leaderboards built from what the MLflow store holds, nothing else."""
