"""Judging the result: generation, metrics with intervals, human ratings and their statistics."""
