"""Whole-model training: loss and gradients of a packed model, in-place weight updates.

The forward pass runs the model's own kernel (weights packed once, buffers kept between
calls); the output layer's backward pass (softmax and cross-entropy together), the loss and
backpropagation through time then run in one compiled call that reads the forward's gate and
state buffers (fastrnn._kernels._backward).  Updates change the packed weights in place.
"""
import numbers

import numpy as np

from fastrnn import _api, _checked, reference
from fastrnn._kernels import _backward as _bk
from fastrnn._packing import GATES, as_c
from fastrnn._validation import check_gradients, check_targets

__all__ = ["loss_and_grads", "apply_gradients", "parameters"]


def _scratch(model):
    """The model's per-thread work buffer list for the backward kernel."""
    return model._scratch.__dict__.setdefault("train", [None])


def _reference(model, x, targets, states):
    """reference.<kind>_loss_and_grads in float64 on the model's (packed) weights."""
    params = model._reference_parameters()
    f64 = [np.asarray(v, dtype=np.float64) for v in (x,) + tuple(states)]
    with np.errstate(all="ignore"):
        if model._kind == "rnn":
            return reference.rnn_loss_and_grads(f64[0], targets, f64[1], params)
        return reference.lstm_loss_and_grads(f64[0], targets, f64[1], f64[2], params)


def _ready_inputs(model, x, states):
    """[x, *states] when they are already what the kernels take (C-contiguous, aligned
    arrays of the model's dtype and shapes, every size positive; a state None becomes
    zeros), else None: the call then goes through the model's validation."""
    if (type(x) is not np.ndarray or x.dtype != model.dtype or x.ndim != 3
            or not x.flags.c_contiguous or not x.flags.aligned or x.shape[0] != model.n_x
            or 0 in x.shape):
        return None
    shape = (model.n_a, x.shape[1])
    out = [x]
    for s in states:
        if s is None:
            out.append(np.zeros(shape, dtype=model.dtype))
        elif (type(s) is np.ndarray and s.dtype == model.dtype and s.shape == shape
              and s.flags.c_contiguous and s.flags.aligned):
            out.append(s)
        else:
            return None
    return out


def _trainable(model, what, head=True):
    """Refuse the models whose gradients are not implemented: only the lessons' cells (tanh
    RNN, LSTM), and for the loss, only with an output layer."""
    name = f"{type(model).__name__}.{what}"
    if model._kind not in ("rnn", "lstm"):
        raise TypeError(f"{name}: training is implemented for the lessons' RNN and LSTM, not "
                        f"for a {model._kind.upper()}")
    if head and getattr(model, "nonlinearity", "tanh") != "tanh":
        raise ValueError(f"{name}: the backward pass is the lessons' tanh RNN's, got "
                         f"nonlinearity={model.nonlinearity!r}")
    if head and not model.has_head:
        raise ValueError(f"{name} needs an output layer (the loss is the cross-entropy of its "
                         f"softmax); this model was built without one")


def loss_and_grads(model, x, targets, states):
    """Summed cross-entropy of ``model`` on (x, targets) and the gradients of every
    parameter and initial state; see RNN.loss_and_grads / LSTM.loss_and_grads."""
    _trainable(model, "loss_and_grads")
    lstm = model._kind == "lstm"
    arrays = _ready_inputs(model, x, states)
    out = model._try(arrays[0], tuple(arrays[1:]), True, caches=True) if arrays is not None else None
    if out is None:
        names = [("x", x), ("a0", states[0])] + ([("c0", states[1])] if lstm else [])
        _, arrays = model._inputs(names, sequence=True)
    x, states = arrays[0], arrays[1:]
    _, m, T = x.shape
    if (type(targets) is np.ndarray and targets.dtype == np.intp and targets.shape == (m, T)
            and targets.flags.c_contiguous and _bk.first_bad_target(targets, model.n_y) < 0):
        tg = targets
    else:
        tg = check_targets(targets, m, T, model.n_y)
    if 0 in (m, T, model.n_a):
        # nothing to backpropagate through time: the reference's zeros (and, without
        # hidden units, the output bias's gradient) at no cost worth a kernel
        loss, grads = _reference(model, x, tg, states)
        return float(loss), {k: np.asarray(v, dtype=model.dtype) for k, v in grads.items()}
    p = model._packed
    small = _api.SMALL_BATCH_MAX_M
    if out is None:
        out = model._try(x, tuple(states), True, caches=True)
    if lstm:
        a, y, c, z, s = out if out is not None else _api.run_lstm(p, x, *states)
        loss, dW, db, dwy, dby, da0, dc0 = _bk.lstm_loss_backward(
            y, tg, x, z, s, states[0], states[1], p.blocks[0], p.wy, small, _scratch(model))
        n_a = model.n_a
        grads = {}
        for g in ("f", "i", "c", "o"):
            k = GATES.index(g)
            grads["dW" + g] = dW[k * n_a:(k + 1) * n_a]
            grads["db" + g] = db[k * n_a:(k + 1) * n_a].reshape(n_a, 1)
        grads.update({"dWy": dwy, "dby": dby.reshape(-1, 1), "da0": da0, "dc0": dc0})
    else:
        a, y, z = out if out is not None else _api.run_rnn(p, x, states[0])
        loss, dwx, dwa, dwy, db, dby, da0 = _bk.rnn_loss_backward(
            y, tg, x, z, states[0], p.w[0], p.w[1], p.wy, small, _scratch(model))
        grads = {"dWax": dwx, "dWaa": dwa, "dWya": dwy, "dba": db.reshape(-1, 1),
                 "dby": dby.reshape(-1, 1), "da0": da0}
    if _checked.is_checked():
        want_loss, want = _reference(model, x, tg, states)
        got = {"loss": np.asarray(loss, dtype=model.dtype), **grads}
        _checked.compare(f"{type(model).__name__}.loss_and_grads", got,
                         {"loss": want_loss, **want}, model.dtype)
    return float(loss), grads


def _parameter_views(model):
    """(key, packed array, lessons' shape) of every parameter, the packed arrays being the
    model's own (updates through them change the model)."""
    p = model._packed
    n_a, n_y = model.n_a, model.n_y
    if model._kind == "rnn":
        views = [("Wax", p.w[0], p.w[0].shape), ("Waa", p.w[1], p.w[1].shape),
                 ("Wya", p.wy, p.wy.shape), ("ba", p.b, (n_a, 1)), ("by", p.by, (n_y, 1))]
    else:
        views = []
        for g in ("f", "i", "c", "o"):
            k = GATES.index(g)
            views += [("W" + g, p.w[k], p.w[k].shape), ("b" + g, p.b[k], (n_a, 1))]
        views += [("Wy", p.wy, p.wy.shape), ("by", p.by, (n_y, 1))]
    if not model.has_head:  # no output layer: its arrays have no rows
        views = [v for v in views if v[0] not in ("Wya", "Wy", "by")]
    return views


def parameters(model):
    """The model's weights as the lessons' ``parameters`` dict (new arrays)."""
    if model._kind not in ("rnn", "lstm"):  # the other cells' keys, from their packing
        return {k: v.astype(model.dtype) for k, v in model._reference_parameters().items()}
    return {key: np.array(w, copy=True).reshape(shape)
            for key, w, shape in _parameter_views(model)}


def _real(value, name, positive):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if positive and not v > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


def apply_gradients(model, grads, lr, clip=None):
    """``W -= lr * clip(dW)`` for every parameter, in place on the packed weights."""
    _trainable(model, "apply_gradients", head=False)
    lr = _real(lr, "lr", positive=False)
    clip = 0.0 if clip is None else _real(clip, "clip", positive=True)
    views = _parameter_views(model)
    arrays = check_gradients(grads, [(key, shape) for key, _, shape in views])
    converted = [(w, as_c(arrays[key], model.dtype).reshape(w.shape)) for key, w, _ in views]
    nonfinite = 0
    recurrent = {id(v) for v in model._packed.w}
    for w, g in converted:
        bad = _bk.sgd_update(w, g, lr, clip)
        if id(w) in recurrent:
            nonfinite += bad
    # the forward flushes subnormal inputs only while every weight is finite
    model._finite = nonfinite == 0
    model._weights_changed()
