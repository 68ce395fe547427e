"""Keras 3 -> fastrnn: ``SimpleRNN``, ``LSTM``, ``GRU`` and ``Bidirectional`` layers.

Keras stores ``kernel (n_x, G·n_a)`` and ``recurrent_kernel (n_a, G·n_a)`` (inputs as rows: the
transpose of PyTorch's) with gate column blocks in the order LSTM ``i, f, c, o``, GRU
``z, r, h``, and ``bias`` ``(G·n_a,)`` — or ``(2, 3·n_a)`` (input bias, recurrent bias) for a
GRU with ``reset_after=True``.  keras is imported only by :func:`from_keras`; :func:`gates_from`
works on plain arrays.
"""
import numpy as np

from fastrnn.io._spec import Spec, layer_parameters

__all__ = ["from_keras", "spec_from_weights", "gates_from", "KERAS_GATES"]

# Keras's gate column blocks, left to right, in fastrnn's gate names (h is the GRU's n).
KERAS_GATES = {"rnn": ("a",), "lstm": ("i", "f", "c", "o"), "gru": ("z", "r", "n")}
_KINDS = {"SimpleRNN": "rnn", "LSTM": "lstm", "GRU": "gru"}


def gates_from(kind, kernel, recurrent_kernel, bias, dtype=np.float64):
    """One Keras layer's weights as gates ``g -> (Wx, Wh, bx, bh)`` (see fastrnn.io._spec).

    ``bias`` is None (``use_bias=False``), ``(G·n_a,)``, or ``(2, 3·n_a)`` for a GRU with
    ``reset_after=True`` (row 0 input bias, row 1 recurrent bias).
    """
    K = np.asarray(kernel, dtype=dtype)
    U = np.asarray(recurrent_kernel, dtype=dtype)
    n = U.shape[0]
    G = len(KERAS_GATES[kind])
    if bias is None:
        bx = bh = np.zeros(G * n, dtype=dtype)
    else:
        b = np.asarray(bias, dtype=dtype)
        bx, bh = (b[0], b[1]) if b.ndim == 2 else (b, np.zeros_like(b))
    blk = lambda a, j: a[..., j * n:(j + 1) * n]  # noqa: E731
    return {g: (blk(K, j).T, blk(U, j).T, blk(bx, j), blk(bh, j))
            for j, g in enumerate(KERAS_GATES[kind])}


def _config(layer, where):
    """(kind, config) of one Keras recurrent layer, refusing what fastrnn cannot compute."""
    name = type(layer).__name__
    if name not in _KINDS:
        raise TypeError(f"{where} must be a keras SimpleRNN, LSTM, GRU or Bidirectional layer, "
                        f"got {type(layer).__module__}.{name}")
    kind = _KINDS[name]
    cfg = layer.get_config()
    want = {"activation": "relu" if kind == "rnn" and cfg.get("activation") == "relu"
            else "tanh"}
    if kind != "rnn":
        want["recurrent_activation"] = "sigmoid"
    for key, value in want.items():
        if cfg.get(key) != value:
            raise ValueError(f"{where}.{key}={cfg.get(key)!r} is not supported; fastrnn "
                             f"computes {value!r}" + (" (or 'relu' for SimpleRNN)"
                                                      if kind == "rnn" else ""))
    if cfg.get("stateful"):
        raise ValueError(f"{where}: stateful=True is not supported (pass the state as h0)")
    policy = getattr(layer, "dtype_policy", None)
    compute = getattr(policy, "compute_dtype", "float32")
    if compute not in ("float32", "float64"):
        raise ValueError(f"{where} computes in {compute} (dtype policy {policy.name!r}); "
                         f"fastrnn computes in float32 or float64 only")
    return kind, cfg


def _to_numpy(value):
    """A Keras variable or tensor of any backend as an ndarray (without numpy's __array__
    route, which Keras 3's torch tensors implement in a way numpy 2 deprecates)."""
    value = getattr(value, "value", value)
    if hasattr(value, "detach"):  # torch
        return value.detach().cpu().numpy()
    if hasattr(value, "numpy"):  # TensorFlow
        return value.numpy()
    return np.asarray(value)  # JAX, numpy


def _weights(layer):
    cell = layer.cell
    arr = lambda v: None if v is None else _to_numpy(v)  # noqa: E731
    return arr(cell.kernel), arr(cell.recurrent_kernel), arr(getattr(cell, "bias", None))


def from_keras(layer):
    """A fastrnn model computing what a trained Keras 3 recurrent layer computes.

    Parameters
    ----------
    layer : keras.layers.SimpleRNN, LSTM, GRU or Bidirectional (``merge_mode="concat"``)
        Activations tanh/sigmoid (SimpleRNN: tanh or relu), any ``use_bias``, GRU
        ``reset_after`` either way; dropout is accepted (inference does none).
        ``go_backwards`` alone and ``stateful`` are refused.

    Returns
    -------
    fastrnn.io.Imported
        ``forward(x)`` with ``x (n_x, m, T_x)`` (Keras's ``(m, T_x, n_x)`` transposed to the
        lessons' layout) returns the full sequence of hidden states ``(D·n_a, m, T_x)`` —
        Keras's ``return_sequences=True`` output, transposed, whatever the layer's own
        ``return_sequences`` — then None (no head) and the final states.
    """
    name = type(layer).__name__
    if name == "Bidirectional":
        merge = layer.get_config().get("merge_mode")
        if merge != "concat":
            raise ValueError(f"layer.merge_mode={merge!r} is not supported; only 'concat' "
                             f"(forward rows, then backward)")
        parts = [(layer.forward_layer, "layer.forward_layer", False),
                 (layer.backward_layer, "layer.backward_layer", True)]
    else:
        parts = [(layer, "layer", False)]
    kinds, params, dtypes = set(), [], set()
    for sub, where, backward in parts:
        kind, cfg = _config(sub, where)
        if bool(cfg.get("go_backwards")) != backward:
            raise ValueError(f"{where}.go_backwards={cfg.get('go_backwards')} is not supported "
                             f"outside a Bidirectional layer's backward half")
        kinds.add((kind, cfg.get("activation"), bool(cfg.get("reset_after", True))))
        K, U, b = _weights(sub)
        dtypes.add(K.dtype)
        params.append((kind, K, U, b))
    if len(kinds) != 1:
        raise ValueError(f"the two halves of a Bidirectional layer must be the same kind of "
                         f"layer with the same activation, got {sorted(kinds)}")
    dtype = np.float32 if dtypes == {np.dtype(np.float32)} else np.float64
    kind, activation, reset_after = kinds.pop()
    spec = spec_from_weights(kind, [(K, U, b) for _, K, U, b in params],
                             activation=activation, reset_after=reset_after, dtype=dtype)
    from fastrnn.io._model import Imported
    return Imported(spec)


def spec_from_weights(kind, directions, *, activation="tanh", reset_after=True,
                      dtype=np.float64):
    """A :class:`~fastrnn.io.Spec` from one Keras layer's weights (two for Bidirectional).

    Parameters
    ----------
    kind : {"rnn", "lstm", "gru"}
    directions : list of (kernel, recurrent_kernel, bias)
        The layer's (or the forward then the backward layer's) weights; see
        :func:`gates_from`.
    activation : {"tanh", "relu"}
    reset_after : bool
        The GRU's ``reset_after`` (False: one bias ``(3·n_a,)``, the reset gate applied to the
        state before the recurrent product).
    dtype : float32 or float64
    """
    layers = [[layer_parameters(kind, gates_from(kind, K, U, b, dtype))
               for K, U, b in directions]]
    return Spec(kind, layers, directions=("forward", "reverse")[:len(directions)],
                activation=activation, reset_after=reset_after if kind == "gru" else True,
                dtype=dtype)
