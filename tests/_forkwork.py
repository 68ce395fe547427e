"""The work of tests/test_fork.py, in a module of its own so that spawned and forkserver
children import only this (not pytest and the test module)."""
import numpy as np

import fastrnn
from fastrnn._bench import rnn_params

# Above fastrnn._api._MIN_THREADED_WORK multiply-adds, so n_threads=2 really uses the pool.
N_X, N_A, N_Y, M, T_X = 32, 64, 8, 16, 30


def forward(n_threads=2):
    """A model's forward pass on fixed data with ``n_threads`` threads."""
    rng = np.random.default_rng(11)
    model = fastrnn.RNN(rnn_params(rng, N_X, N_A, N_Y))
    x = rng.standard_normal((N_X, M, T_X))
    a, y = model.forward(x, n_threads=n_threads)
    return a, y
