"""A literal numpy run of a fastrnn.io.Spec, for the importer tests.

Shares no code with fastrnn.io._model: one example at a time, one step at a time, straight from
the lessons' keys (float64).  Testing a converter's Spec with it checks the layout map alone
(also for cells fastrnn cannot run yet); testing fastrnn.io.Imported against it checks the
composition.
"""
import numpy as np


def _sigmoid(z):
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-z))


def _cell(kind, activation, p, x, h, c, reset_after=True):
    """One step for one example: x (n_in,), h, c (n_a,) -> h, c."""
    if kind == "rnn":
        z = p["Waa"] @ h + p["Wax"] @ x + p["ba"][:, 0]
        return (np.tanh(z) if activation == "tanh" else np.maximum(z, 0)), None
    concat = np.concatenate([h, x])
    if kind == "lstm":
        f = _sigmoid(p["Wf"] @ concat + p["bf"][:, 0])
        i = _sigmoid(p["Wi"] @ concat + p["bi"][:, 0])
        g = np.tanh(p["Wc"] @ concat + p["bc"][:, 0])
        o = _sigmoid(p["Wo"] @ concat + p["bo"][:, 0])
        c = f * c + i * g
        return o * np.tanh(c), c
    r = _sigmoid(p["Wrx"] @ x + p["brx"][:, 0] + p["Wra"] @ h + p["bra"][:, 0])
    z = _sigmoid(p["Wzx"] @ x + p["bzx"][:, 0] + p["Wza"] @ h + p["bza"][:, 0])
    if reset_after:
        n = np.tanh(p["Wnx"] @ x + p["bnx"][:, 0] + r * (p["Wna"] @ h + p["bna"][:, 0]))
    else:
        n = np.tanh(p["Wnx"] @ x + p["bnx"][:, 0] + p["Wna"] @ (r * h) + p["bna"][:, 0])
    return (1 - z) * n + z * h, None


def run(spec, x, lengths=None, h0=None, c0=None):
    """(a (D·n_a, m, T), y or None, h_n (L·D, n_a, m), c_n or None) in float64."""
    f64 = lambda t: {k: np.asarray(v, dtype=np.float64) for k, v in t.items()}  # noqa: E731
    x = np.asarray(x, dtype=np.float64)
    _, m, T = x.shape
    L, D, n_a = spec.num_layers, spec.num_directions, spec.n_a
    lengths = np.full(m, T) if lengths is None else np.asarray(lengths)
    h0 = np.zeros((L * D, n_a, m)) if h0 is None else np.asarray(h0, dtype=np.float64)
    c0 = np.zeros((L * D, n_a, m)) if c0 is None else np.asarray(c0, dtype=np.float64)
    h_n, c_n = np.zeros_like(h0), np.zeros_like(c0)
    inp = x
    for l in range(L):
        out = np.zeros((D * n_a, m, T))
        for d, direction in enumerate(spec.directions):
            p = f64(spec.layers[l][d])
            k = l * D + d
            for i in range(m):
                h, c = h0[k, :, i], c0[k, :, i]
                steps = range(lengths[i])
                for t in (steps if direction == "forward" else reversed(steps)):
                    h, c = _cell(spec.kind, spec.activation, p, inp[:, i, t], h, c,
                                 spec.reset_after)
                    out[d * n_a:(d + 1) * n_a, i, t] = h
                h_n[k, :, i] = h
                if c is not None:
                    c_n[k, :, i] = c
        inp = out
    y = None
    if spec.head is not None:
        head = f64(spec.head)
        W, b = head["Wya" if spec.kind == "rnn" else "Wy"], head["by"]
        y = np.zeros((W.shape[0], m, T))  # 0 past each example's length
        for i in range(m):
            for t in range(lengths[i]):
                z = W @ inp[:, i, t] + b[:, 0]
                e = np.exp(z - z.max())
                y[:, i, t] = e / e.sum()
    return inp, y, h_n, (c_n if spec.kind == "lstm" else None)
