"""Sums of products that give the same bits on every machine.

BLAS splits a long dot product across its threads, so ``numpy.dot`` rounds one way in a
process with one BLAS thread (a Ray worker) and another in a process with eight (a
laptop): the last digit of a metric would depend on where it was computed. These
reductions run in numpy's own loop, in one fixed order, whatever the thread count.

>>> import numpy as np
>>> dot(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
11.0
>>> rows_dot(np.array([[1.0, 0.0], [2.0, 1.0]]), np.array([3.0, 4.0])).tolist()
[3.0, 10.0]
"""

from __future__ import annotations

import numpy as np


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """Σ a_i·b_i of two vectors of the same length."""
    return float(np.einsum("i,i->", a, b))


def rows_dot(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """Σ_j m_ij·v_j for each row i of ``matrix`` (what ``matrix @ vector`` gives)."""
    return np.einsum("ij,j->i", matrix, vector)
