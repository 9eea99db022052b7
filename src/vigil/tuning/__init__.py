"""Hyperparameter search on validation folds carved from training data only."""
