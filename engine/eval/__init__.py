"""Evaluation: retrieval metrics, runs with same-run baselines, the hidden-names protocol."""
