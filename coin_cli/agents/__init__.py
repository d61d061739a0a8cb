"""Policies: the Policy protocol, baselines, SB3 models."""
