"""Modelling: model inputs, builders, training, tuning, evaluation, export and plots."""
