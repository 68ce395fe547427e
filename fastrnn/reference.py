"""The specification: the step-by-step numpy forward and backward passes, literally.

This module is what every fastrnn kernel is checked against.  It follows the lessons'
functions line by line (examples are columns; a sequence has time on its last axis) and is
deliberately readable and unoptimised.  It shares no code with the kernels and depends on
nothing but numpy.

One documented difference from the lessons: their ``softmax`` subtracts the *global* maximum,
which gives NaN (0/0) when columns differ by a few hundred in scale; this one subtracts each
column's own maximum, which is mathematically identical and never spuriously NaN.

Beyond the lessons: the GRU (:func:`gru_cell_forward`, :func:`gru_forward`), parameters
without an output layer (no ``Wya``/``Wy`` and ``by``: the cells return None for the
prediction) and :func:`layer_forward`, one layer over a batch of sequences of different
lengths, in either direction, from any initial state -- the spec of fastrnn's stacked and
bidirectional models, written one example and one step at a time.

Like the lessons' code, ``sigmoid`` lets numpy warn on overflow for large negative input
(the result, 0, is still right); fastrnn's kernels never warn.
"""
import numpy as np

__all__ = [
    "softmax",
    "sigmoid",
    "rnn_cell_forward",
    "rnn_forward",
    "lstm_cell_forward",
    "lstm_forward",
    "rnn_cell_backward",
    "rnn_backward",
    "lstm_cell_backward",
    "lstm_backward",
    "rnn_loss_and_grads",
    "lstm_loss_and_grads",
    "gru_cell_forward",
    "gru_forward",
    "layer_forward",
]


def softmax(x):
    """Column-wise softmax of x (n, m): each column shifted by its own maximum."""
    e_x = np.exp(x - np.max(x, axis=0, keepdims=True))
    return e_x / e_x.sum(axis=0, keepdims=True)


def sigmoid(x):
    """Logistic function 1 / (1 + exp(-x))."""
    return 1 / (1 + np.exp(-x))


def rnn_cell_forward(xt, a_prev, parameters, nonlinearity="tanh"):
    """One step of the basic RNN.

    Parameters
    ----------
    xt : ndarray (n_x, m)
    a_prev : ndarray (n_a, m)
    parameters : dict with Wax (n_a, n_x), Waa (n_a, n_a), Wya (n_y, n_a), ba (n_a, 1),
        by (n_y, 1); without Wya and by, no output layer
    nonlinearity : "tanh" (the lessons') or "relu" (``max(z, 0)``, as PyTorch's nn.RNN offers)

    Returns
    -------
    a_next : ndarray (n_a, m)
    yt_pred : ndarray (n_y, m), or None without an output layer
    cache : tuple (a_next, a_prev, xt, parameters)
    """
    Wax = parameters["Wax"]
    Waa = parameters["Waa"]
    ba = parameters["ba"]

    if nonlinearity == "relu":
        a_next = np.maximum(np.dot(Waa, a_prev) + np.dot(Wax, xt) + ba, 0)
    else:
        a_next = np.tanh(np.dot(Waa, a_prev) + np.dot(Wax, xt) + ba)
    yt_pred = None
    if "Wya" in parameters:  # no output layer: the hidden state only
        yt_pred = softmax(np.dot(parameters["Wya"], a_next) + parameters["by"])

    cache = (a_next, a_prev, xt, parameters)
    return a_next, yt_pred, cache


def rnn_forward(x, a0, parameters, nonlinearity="tanh"):
    """The basic RNN over a sequence.

    Parameters
    ----------
    x : ndarray (n_x, m, T_x)
    a0 : ndarray (n_a, m)
    parameters : dict, as for :func:`rnn_cell_forward`
    nonlinearity : as for :func:`rnn_cell_forward`

    Returns
    -------
    a : ndarray (n_a, m, T_x)
    y_pred : ndarray (n_y, m, T_x), or None without an output layer
    caches : tuple (list of the T_x cell caches, x)
    """
    caches = []
    n_x, m, T_x = x.shape
    n_a = parameters["Waa"].shape[0]
    n_y = parameters["Wya"].shape[0] if "Wya" in parameters else None

    a = np.zeros((n_a, m, T_x))
    y_pred = np.zeros((n_y, m, T_x)) if n_y is not None else None

    a_next = a0
    for t in range(T_x):
        xt = x[:, :, t]
        a_next, yt_pred, cache = rnn_cell_forward(xt, a_next, parameters, nonlinearity)
        a[:, :, t] = a_next
        if y_pred is not None:
            y_pred[:, :, t] = yt_pred
        caches.append(cache)

    caches = (caches, x)
    return a, y_pred, caches


def lstm_cell_forward(xt, a_prev, c_prev, parameters):
    """One step of the LSTM.

    Parameters
    ----------
    xt : ndarray (n_x, m)
    a_prev, c_prev : ndarray (n_a, m)
    parameters : dict with Wf, Wi, Wc, Wo (n_a, n_a + n_x); bf, bi, bc, bo (n_a, 1);
        Wy (n_y, n_a); by (n_y, 1) (without Wy and by, no output layer)

    Returns
    -------
    a_next, c_next : ndarray (n_a, m)
    yt_pred : ndarray (n_y, m), or None without an output layer
    cache : tuple (a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters)
    """
    Wf = parameters["Wf"]
    bf = parameters["bf"]
    Wi = parameters["Wi"]
    bi = parameters["bi"]
    Wc = parameters["Wc"]
    bc = parameters["bc"]
    Wo = parameters["Wo"]
    bo = parameters["bo"]

    n_x, m = xt.shape
    n_a = Wf.shape[0]

    concat = np.zeros((n_a + n_x, m))
    concat[:n_a, :] = a_prev
    concat[n_a:, :] = xt

    ft = sigmoid(np.dot(Wf, concat) + bf)
    it = sigmoid(np.dot(Wi, concat) + bi)
    cct = np.tanh(np.dot(Wc, concat) + bc)
    c_next = ft * c_prev + it * cct
    ot = sigmoid(np.dot(Wo, concat) + bo)
    a_next = ot * np.tanh(c_next)

    yt_pred = None
    if "Wy" in parameters:  # no output layer: the states only
        yt_pred = softmax(np.dot(parameters["Wy"], a_next) + parameters["by"])

    cache = (a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters)
    return a_next, c_next, yt_pred, cache


def lstm_forward(x, a0, parameters):
    """The LSTM over a sequence; the initial cell state is zeros.

    Parameters
    ----------
    x : ndarray (n_x, m, T_x)
    a0 : ndarray (n_a, m)
    parameters : dict, as for :func:`lstm_cell_forward`

    Returns
    -------
    a : ndarray (n_a, m, T_x)
    y : ndarray (n_y, m, T_x), or None without an output layer
    c : ndarray (n_a, m, T_x)
    caches : tuple (list of the T_x cell caches, x)
    """
    caches = []
    n_x, m, T_x = x.shape
    n_a = parameters["Wf"].shape[0]
    n_y = parameters["Wy"].shape[0] if "Wy" in parameters else None

    a = np.zeros((n_a, m, T_x))
    c = np.zeros((n_a, m, T_x))
    y = np.zeros((n_y, m, T_x)) if n_y is not None else None

    a_next = a0
    c_next = np.zeros((n_a, m))

    for t in range(T_x):
        a_next, c_next, yt, cache = lstm_cell_forward(x[:, :, t], a_next, c_next, parameters)
        a[:, :, t] = a_next
        if y is not None:
            y[:, :, t] = yt
        c[:, :, t] = c_next
        caches.append(cache)

    caches = (caches, x)
    return a, y, c, caches


# ------------------------------------------------------------------ backward passes

def rnn_cell_backward(da_next, cache):
    """Backward pass of one basic-RNN step.

    The output layer is not backpropagated (the lessons' convention): ``da_next`` is the
    whole gradient of the loss with respect to ``a_next``.

    Parameters
    ----------
    da_next : ndarray (n_a, m)
        Gradient of the loss with respect to ``a_next``.
    cache : tuple (a_next, a_prev, xt, parameters), from :func:`rnn_cell_forward`

    Returns
    -------
    gradients : dict
        ``dxt`` (n_x, m), ``da_prev`` (n_a, m), ``dWax`` (n_a, n_x), ``dWaa`` (n_a, n_a),
        ``dba`` (n_a, 1).
    """
    (a_next, a_prev, xt, parameters) = cache

    Wax = parameters["Wax"]
    Waa = parameters["Waa"]
    Wya = parameters["Wya"]  # noqa: F841  (read as the lessons do; not backpropagated)
    ba = parameters["ba"]  # noqa: F841
    by = parameters["by"]  # noqa: F841

    dtanh = da_next * (1 - a_next ** 2)

    dxt = np.dot(Wax.T, dtanh)
    dWax = np.dot(dtanh, xt.T)

    da_prev = np.dot(Waa.T, dtanh)
    dWaa = np.dot(dtanh, a_prev.T)

    dba = np.sum(dtanh, axis=1, keepdims=True)

    gradients = {"dxt": dxt, "da_prev": da_prev, "dWax": dWax, "dWaa": dWaa, "dba": dba}
    return gradients


def rnn_backward(da, caches):
    """Backward pass of the basic RNN over a sequence (backpropagation through time).

    Parameters
    ----------
    da : ndarray (n_a, m, T_x)
        Upstream gradient of every hidden state.  T_x is read from ``da``: it may cover
        fewer steps than ``caches``, and then only the first T_x caches are used.
    caches : tuple (list of cell caches, x), from :func:`rnn_forward`

    Returns
    -------
    gradients : dict
        ``dx`` (n_x, m, T_x), ``da0`` (n_a, m), ``dWax`` (n_a, n_x), ``dWaa`` (n_a, n_a),
        ``dba`` (n_a, 1).
    """
    (caches, x) = caches
    (a1, a0, x1, parameters) = caches[0]

    n_a, m, T_x = da.shape
    n_x, m = x1.shape

    dx = np.zeros((n_x, m, T_x))
    dWax = np.zeros((n_a, n_x))
    dWaa = np.zeros((n_a, n_a))
    dba = np.zeros((n_a, 1))
    da0 = np.zeros((n_a, m))
    da_prevt = np.zeros((n_a, m))

    for t in reversed(range(T_x)):
        # step t gets the upstream gradient plus what flows back from step t + 1
        gradients = rnn_cell_backward(da[:, :, t] + da_prevt, caches[t])
        dxt, da_prevt, dWaxt, dWaat, dbat = (gradients["dxt"], gradients["da_prev"],
                                              gradients["dWax"], gradients["dWaa"],
                                              gradients["dba"])
        dx[:, :, t] = dxt
        dWax += dWaxt
        dWaa += dWaat
        dba += dbat

    da0 = da_prevt

    gradients = {"dx": dx, "da0": da0, "dWax": dWax, "dWaa": dWaa, "dba": dba}
    return gradients


def lstm_cell_backward(da_next, dc_next, cache):
    """Backward pass of one LSTM step.

    With ``g = dc_next + da_next * ot * (1 - tanh(c_next)**2)`` (the whole gradient reaching
    ``c_next``; the lessons write it out in each gate's formula):
    ``dot = da_next * tanh(c_next) * ot * (1 - ot)``, ``dcct = g * it * (1 - cct**2)``,
    ``dit = g * cct * it * (1 - it)``, ``dft = g * c_prev * ft * (1 - ft)``,
    ``dc_prev = g * ft``; the gate weights act on ``concat = [a_prev; xt]``, so
    ``dW_k = d_k @ concat.T`` and ``da_prev``, ``dxt`` are the two row blocks of
    ``sum_k W_k.T @ d_k``.

    Parameters
    ----------
    da_next, dc_next : ndarray (n_a, m)
        Gradients of the loss with respect to ``a_next`` and ``c_next``.
    cache : tuple (a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters)

    Returns
    -------
    gradients : dict
        ``dxt`` (n_x, m), ``da_prev``, ``dc_prev`` (n_a, m), ``dWf``, ``dWi``, ``dWc``,
        ``dWo`` (n_a, n_a + n_x), ``dbf``, ``dbi``, ``dbc``, ``dbo`` (n_a, 1).
    """
    (a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters) = cache

    n_x, m = xt.shape
    n_a, m = a_next.shape

    tanh_c = np.tanh(c_next)
    g = dc_next + da_next * ot * (1 - tanh_c ** 2)

    dot = da_next * tanh_c * ot * (1 - ot)
    dcct = g * it * (1 - cct ** 2)
    dit = g * cct * it * (1 - it)
    dft = g * c_prev * ft * (1 - ft)

    concat = np.zeros((n_a + n_x, m))
    concat[:n_a, :] = a_prev
    concat[n_a:, :] = xt

    dWf = np.dot(dft, concat.T)
    dWi = np.dot(dit, concat.T)
    dWc = np.dot(dcct, concat.T)
    dWo = np.dot(dot, concat.T)
    dbf = np.sum(dft, axis=1, keepdims=True)
    dbi = np.sum(dit, axis=1, keepdims=True)
    dbc = np.sum(dcct, axis=1, keepdims=True)
    dbo = np.sum(dot, axis=1, keepdims=True)

    dconcat = (np.dot(parameters["Wf"].T, dft) + np.dot(parameters["Wi"].T, dit)
               + np.dot(parameters["Wc"].T, dcct) + np.dot(parameters["Wo"].T, dot))
    da_prev = dconcat[:n_a, :]
    dxt = dconcat[n_a:, :]
    dc_prev = g * ft

    gradients = {"dxt": dxt, "da_prev": da_prev, "dc_prev": dc_prev, "dWf": dWf, "dbf": dbf,
                 "dWi": dWi, "dbi": dbi, "dWc": dWc, "dbc": dbc, "dWo": dWo, "dbo": dbo}
    return gradients


def lstm_backward(da, caches):
    """Backward pass of the LSTM over a sequence (backpropagation through time).

    Parameters
    ----------
    da : ndarray (n_a, m, T_x)
        Upstream gradient of every hidden state; T_x is read from ``da`` (it may cover fewer
        steps than ``caches``: only the first T_x caches are used).  The cell gradient
        starts at zero after the last step.
    caches : tuple (list of cell caches, x), from :func:`lstm_forward`

    Returns
    -------
    gradients : dict
        ``dx`` (n_x, m, T_x), ``da0`` (n_a, m), ``dWf``, ``dWi``, ``dWc``, ``dWo``
        (n_a, n_a + n_x), ``dbf``, ``dbi``, ``dbc``, ``dbo`` (n_a, 1).
    """
    (caches, x) = caches
    (a1, c1, a0, c0, f1, i1, cc1, o1, x1, parameters) = caches[0]

    n_a, m, T_x = da.shape
    n_x, m = x1.shape

    dx = np.zeros((n_x, m, T_x))
    da0 = np.zeros((n_a, m))
    da_prevt = np.zeros((n_a, m))
    dc_prevt = np.zeros((n_a, m))
    dWf = np.zeros((n_a, n_a + n_x))
    dWi = np.zeros((n_a, n_a + n_x))
    dWc = np.zeros((n_a, n_a + n_x))
    dWo = np.zeros((n_a, n_a + n_x))
    dbf = np.zeros((n_a, 1))
    dbi = np.zeros((n_a, 1))
    dbc = np.zeros((n_a, 1))
    dbo = np.zeros((n_a, 1))

    for t in reversed(range(T_x)):
        gradients = lstm_cell_backward(da[:, :, t] + da_prevt, dc_prevt, caches[t])
        da_prevt = gradients["da_prev"]
        dc_prevt = gradients["dc_prev"]
        dx[:, :, t] = gradients["dxt"]
        dWf += gradients["dWf"]
        dWi += gradients["dWi"]
        dWc += gradients["dWc"]
        dWo += gradients["dWo"]
        dbf += gradients["dbf"]
        dbi += gradients["dbi"]
        dbc += gradients["dbc"]
        dbo += gradients["dbo"]

    da0 = da_prevt

    gradients = {"dx": dx, "da0": da0, "dWf": dWf, "dbf": dbf, "dWi": dWi, "dbi": dbi,
                 "dWc": dWc, "dbc": dbc, "dWo": dWo, "dbo": dbo}
    return gradients


# ------------------------------------------------------------------ whole-model training
# (fastrnn's, not the lessons': the loss and the output layer are backpropagated too)

def _output_layer_backward(y, targets, a, Wy):
    """Summed cross-entropy of the softmax outputs y (n_y, m, T_x) against integer targets
    (m, T_x), and its gradients: dWy, dby and da (n_a, m, T_x) for the hidden states."""
    n_y, m, T_x = y.shape
    loss = 0.0
    dWy = np.zeros(Wy.shape)
    dby = np.zeros((n_y, 1))
    da = np.zeros((Wy.shape[1], m, T_x))
    for t in range(T_x):
        dz = np.array(y[:, :, t], dtype=np.float64)
        for j in range(m):
            loss -= np.log(y[targets[j, t], j, t])
            dz[targets[j, t], j] -= 1
        dWy += np.dot(dz, a[:, :, t].T)
        dby += np.sum(dz, axis=1, keepdims=True)
        da[:, :, t] = np.dot(Wy.T, dz)
    return loss, dWy, dby, da


def rnn_loss_and_grads(x, targets, a0, parameters):
    """Summed cross-entropy of the basic RNN and its gradients for every parameter.

    Parameters
    ----------
    x : ndarray (n_x, m, T_x)
    targets : integer ndarray (m, T_x) of class indices in [0, n_y)
    a0 : ndarray (n_a, m)
    parameters : dict, as for :func:`rnn_cell_forward`

    Returns
    -------
    loss : float
        ``-sum_{j,t} log y_pred[targets[j, t], j, t]``
    grads : dict
        ``dWax, dWaa, dWya, dba, dby`` (the shapes of the parameters) and ``da0`` (n_a, m).
    """
    a, y_pred, (caches, _) = rnn_forward(x, a0, parameters)
    loss, dWya, dby, da = _output_layer_backward(y_pred, targets, a, parameters["Wya"])
    # rnn_backward's loop, which also holds for T_x = 0 (rnn_backward reads caches[0])
    grads = {k: np.zeros(np.shape(parameters[k[1:]])) for k in ("dWax", "dWaa", "dba")}
    da_prevt = np.zeros(np.shape(a0))
    for t in reversed(range(x.shape[2])):
        gradients = rnn_cell_backward(da[:, :, t] + da_prevt, caches[t])
        da_prevt = gradients["da_prev"]
        for k in grads:
            grads[k] += gradients[k]
    grads = {"dWax": grads["dWax"], "dWaa": grads["dWaa"], "dWya": dWya, "dba": grads["dba"],
             "dby": dby, "da0": da_prevt}
    return loss, grads


def lstm_loss_and_grads(x, targets, a0, c0, parameters):
    """Summed cross-entropy of the LSTM (from the states a0, c0) and its gradients.

    Parameters
    ----------
    x : ndarray (n_x, m, T_x)
    targets : integer ndarray (m, T_x) of class indices in [0, n_y)
    a0, c0 : ndarray (n_a, m)
    parameters : dict, as for :func:`lstm_cell_forward`

    Returns
    -------
    loss : float
    grads : dict
        ``dWf, dbf, dWi, dbi, dWc, dbc, dWo, dbo, dWy, dby`` and ``da0``, ``dc0`` (n_a, m).
    """
    n_x, m, T_x = x.shape
    n_y, n_a = parameters["Wy"].shape
    a = np.zeros((n_a, m, T_x))
    y = np.zeros((n_y, m, T_x))
    caches = []
    a_next, c_next = a0, c0
    for t in range(T_x):
        a_next, c_next, y[:, :, t], cache = lstm_cell_forward(x[:, :, t], a_next, c_next,
                                                               parameters)
        a[:, :, t] = a_next
        caches.append(cache)
    loss, dWy, dby, da = _output_layer_backward(y, targets, a, parameters["Wy"])

    grads = {k: np.zeros(np.shape(parameters[k[1:]]))
             for k in ("dWf", "dbf", "dWi", "dbi", "dWc", "dbc", "dWo", "dbo")}
    da_prevt = np.zeros((n_a, m))
    dc_prevt = np.zeros((n_a, m))
    for t in reversed(range(T_x)):
        gradients = lstm_cell_backward(da[:, :, t] + da_prevt, dc_prevt, caches[t])
        da_prevt = gradients["da_prev"]
        dc_prevt = gradients["dc_prev"]
        for k in grads:
            grads[k] += gradients[k]
    grads.update({"dWy": dWy, "dby": dby, "da0": da_prevt, "dc0": dc_prevt})
    return loss, grads


def gru_cell_forward(xt, a_prev, parameters, reset_after=True):
    """One step of the GRU, as PyTorch and Keras compute it by default.

    The reset gate multiplies the recurrent term *after* its bias, so the recurrent bias
    of the candidate (``bna``) cannot be folded into ``bnx``::

        rt = sigmoid(Wrx @ xt + brx + Wra @ a_prev + bra)
        zt = sigmoid(Wzx @ xt + bzx + Wza @ a_prev + bza)
        nt = tanh(Wnx @ xt + bnx + rt * (Wna @ a_prev + bna))
        a_next = (1 - zt) * nt + zt * a_prev

    With ``reset_after=False`` (Keras's ``reset_after=False``, ONNX's default
    ``linear_before_reset=0``) the reset gate scales the state before the product instead:
    ``nt = tanh(Wnx @ xt + bnx + Wna @ (rt * a_prev) + bna)``.

    Parameters
    ----------
    xt : ndarray (n_x, m)
    a_prev : ndarray (n_a, m)
    parameters : dict with Wrx, Wzx, Wnx (n_a, n_x) acting on xt; Wra, Wza, Wna (n_a, n_a)
        acting on a_prev; brx, bzx, bnx, bra, bza, bna (n_a, 1); Wy (n_y, n_a) and
        by (n_y, 1), or neither (no output layer)
    reset_after : bool

    Returns
    -------
    a_next : ndarray (n_a, m)
    yt_pred : ndarray (n_y, m), or None without an output layer
    cache : tuple (a_next, a_prev, rt, zt, nt, xt, parameters)
    """
    Wrx = parameters["Wrx"]
    Wzx = parameters["Wzx"]
    Wnx = parameters["Wnx"]
    Wra = parameters["Wra"]
    Wza = parameters["Wza"]
    Wna = parameters["Wna"]
    brx = parameters["brx"]
    bzx = parameters["bzx"]
    bnx = parameters["bnx"]
    bra = parameters["bra"]
    bza = parameters["bza"]
    bna = parameters["bna"]

    rt = sigmoid(np.dot(Wrx, xt) + brx + np.dot(Wra, a_prev) + bra)
    zt = sigmoid(np.dot(Wzx, xt) + bzx + np.dot(Wza, a_prev) + bza)
    if reset_after:
        nt = np.tanh(np.dot(Wnx, xt) + bnx + rt * (np.dot(Wna, a_prev) + bna))
    else:
        nt = np.tanh(np.dot(Wnx, xt) + bnx + np.dot(Wna, rt * a_prev) + bna)
    a_next = (1 - zt) * nt + zt * a_prev

    yt_pred = None
    if "Wy" in parameters:  # no output layer: the hidden state only
        yt_pred = softmax(np.dot(parameters["Wy"], a_next) + parameters["by"])

    cache = (a_next, a_prev, rt, zt, nt, xt, parameters)
    return a_next, yt_pred, cache


def gru_forward(x, a0, parameters, reset_after=True):
    """The GRU over a sequence.

    Parameters
    ----------
    x : ndarray (n_x, m, T_x)
    a0 : ndarray (n_a, m)
    parameters : dict, as for :func:`gru_cell_forward`
    reset_after : bool, as for :func:`gru_cell_forward`

    Returns
    -------
    a : ndarray (n_a, m, T_x)
    y_pred : ndarray (n_y, m, T_x), or None without an output layer
    caches : tuple (list of the T_x cell caches, x)
    """
    caches = []
    n_x, m, T_x = x.shape
    n_a = parameters["Wra"].shape[0]
    n_y = parameters["Wy"].shape[0] if "Wy" in parameters else None

    a = np.zeros((n_a, m, T_x))
    y_pred = np.zeros((n_y, m, T_x)) if n_y is not None else None

    a_next = a0
    for t in range(T_x):
        a_next, yt_pred, cache = gru_cell_forward(x[:, :, t], a_next, parameters, reset_after)
        a[:, :, t] = a_next
        if y_pred is not None:
            y_pred[:, :, t] = yt_pred
        caches.append(cache)

    caches = (caches, x)
    return a, y_pred, caches


def layer_forward(kind, x, parameters, lengths=None, reverse=False, a0=None, c0=None,
                  **options):
    """One layer over sequences of different lengths, one example and one step at a time.

    Example j reads its first ``lengths[j]`` steps only (PyTorch's ``pack_padded_sequence``):
    forwards from step 0, or with ``reverse`` backwards from its own last step.  Its states
    and predictions past its length are 0, and its final state is the one after the last
    step it read.

    Parameters
    ----------
    kind : "rnn", "lstm" or "gru"
    x : ndarray (n_x, m, T_x)
    parameters : dict, as for the kind's cell
    lengths : sequence of m ints in [1, T_x], optional (default: every length T_x)
    reverse : bool
    a0, c0 : ndarray (n_a, m), optional
        Initial hidden (and, for an LSTM, cell) state; zeros when omitted.
    **options
        The cell's options: ``nonlinearity`` (RNN), ``reset_after`` (GRU).

    Returns
    -------
    a : ndarray (n_a, m, T_x)
    y : ndarray (n_y, m, T_x), or None without an output layer
    c : ndarray (n_a, m, T_x), or None unless kind is "lstm"
    a_last : ndarray (n_a, m)
        Each example's hidden state after its last step.
    c_last : ndarray (n_a, m), or None unless kind is "lstm"
    """
    n_x, m, T_x = x.shape
    n_a = parameters["Wf" if kind == "lstm" else "Waa" if kind == "rnn" else "Wra"].shape[0]
    head = "Wya" if kind == "rnn" else "Wy"
    n_y = parameters[head].shape[0] if head in parameters else None
    if lengths is None:
        lengths = [T_x] * m
    a = np.zeros((n_a, m, T_x))
    c = np.zeros((n_a, m, T_x)) if kind == "lstm" else None
    y = np.zeros((n_y, m, T_x)) if n_y is not None else None
    a_last = np.zeros((n_a, m))
    c_last = np.zeros((n_a, m)) if kind == "lstm" else None
    for j in range(m):
        a_t = np.zeros((n_a, 1)) if a0 is None else a0[:, j:j + 1]
        c_t = np.zeros((n_a, 1)) if c0 is None else c0[:, j:j + 1]
        steps = range(lengths[j])
        for t in (reversed(steps) if reverse else steps):
            xt = x[:, j:j + 1, t]
            if kind == "rnn":
                a_t, yt, _ = rnn_cell_forward(xt, a_t, parameters, **options)
            elif kind == "lstm":
                a_t, c_t, yt, _ = lstm_cell_forward(xt, a_t, c_t, parameters)
                c[:, j:j + 1, t] = c_t
            else:
                a_t, yt, _ = gru_cell_forward(xt, a_t, parameters, **options)
            a[:, j:j + 1, t] = a_t
            if y is not None:
                y[:, j:j + 1, t] = yt
        a_last[:, j:j + 1] = a_t
        if c_last is not None:
            c_last[:, j:j + 1] = c_t
    return a, y, c, a_last, c_last
