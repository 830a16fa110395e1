"""Evaluation data: the hand-written gold set and its validator."""
