"""Assay: continuous evaluation of machine-learning models in production."""
__version__ = "0.1.0"
