"""The ``train`` workload's callables: the drop-in backward passes and the models' gradients,
beside the reference's numpy backward and PyTorch's autograd.

Roles (see :mod:`fastrnn._bench.workloads`):

- ``fastrnn``: the drop-in ``rnn_backward``/``lstm_backward`` on fastrnn's own caches (made
  once, outside the timed calls) with an upstream gradient ``da`` (n_a, m, T_x);
- ``forward``: the drop-in forward of the same shape (the denominator of backward / forward);
- ``reference``: ``reference.rnn_backward``/``lstm_backward`` (the lessons' numpy loop) on
  the reference's caches of the same arrays;
- ``model``: ``model.loss_and_grads(x, targets, a0)``, summed cross-entropy;
- ``torch``: PyTorch's forward + summed ``cross_entropy`` + ``loss.backward()`` (autograd)
  on the same modules as the forward peer (``torch.set_num_threads`` as ``--threads``).

Outputs are compared in two groups that share no key: ``bwd_*`` (the backward's gradients
``dx``, ``da0``, weight gradients) and ``lg_*`` (the loss and the model's gradients, in
PyTorch's layout: ``weight_ih``, ``weight_hh``, ``bias_ih``, ``weight_out``, ``bias_out``,
and ``da0``).  Sums over the m*T_x columns (the loss, weight and bias gradients) are divided
by m*T_x, so the sanity bound of the check applies per column at every shape.
"""
import numpy as np

import fastrnn
from fastrnn import reference
from fastrnn._bench.impls import Impl, _reference_context, _seq_outputs
from fastrnn._bench.kinds import kind

# Gradients that are not sums over the m*T_x columns: compared as they are.
_PER_EXAMPLE = frozenset({"dx", "da0", "dc0", "dc_prev", "da_prev"})
# Training needs the kind's backward and loss_and_grads (the RNN and the LSTM have them).
TRAINABLE = ("rnn", "lstm")


def applies(model, shape_name):
    """Training rows: sequence shapes of the kinds that have a backward pass."""
    from fastrnn._bench.cases import CELL_SHAPES
    return kind(model).name in TRAINABLE and shape_name not in CELL_SHAPES


def training_inputs(case):
    """The upstream gradient ``da`` (n_a, m, T_x) and integer ``targets`` (m, T_x) of a case,
    made once and kept in ``case`` (every implementation and the check use the same)."""
    if "da" not in case:
        x, a0 = case["x"], case["a0"]
        n_y = next(v for k, v in case["parameters"].items() if k in ("Wya", "Wy")).shape[0]
        rng = np.random.default_rng(1 + x.size)
        case["da"] = rng.standard_normal(a0.shape + x.shape[2:]).astype(x.dtype)
        case["targets"] = rng.integers(0, n_y, size=(x.shape[1], x.shape[2]))
    return case["da"], case["targets"]


def _columns(case):
    return max(1, case["x"].shape[1] * case["x"].shape[2])


def _backward_outputs(cols):
    def outputs(grads):
        return {"bwd_" + k: (np.asarray(v) if k in _PER_EXAMPLE else np.asarray(v) / cols)
                for k, v in grads.items()}
    return outputs


def _lg_outputs(k, cols):
    """``(loss, grads)`` in fastrnn's layout -> the ``lg_*`` dict (PyTorch's layout)."""
    def outputs(res):
        loss, grads = res
        w = k.torch_weights({key[1:]: v for key, v in grads.items() if key not in ("da0", "dc0")})
        out = {"lg_" + name: np.asarray(w[name], np.float64) / cols
               for name in ("weight_ih", "weight_hh", "bias_ih", "weight_out", "bias_out")}
        out.update(lg_loss=np.float64(loss) / cols, lg_da0=np.asarray(grads["da0"]))
        return out
    return outputs


def _torch_impl(k, case):
    """PyTorch forward + summed cross-entropy + loss.backward() on the forward peer's modules."""
    from fastrnn._bench.peer_torch import build_torch, import_torch
    torch = import_torch()
    x, a0, p = case["x"], case["a0"], case["parameters"]
    _, targets = training_inputs(case)
    core, linear = build_torch(k, p, x.dtype)
    tdtype = torch.float64 if x.dtype == np.float64 else torch.float32
    xs = torch.tensor(np.ascontiguousarray(x.transpose(2, 1, 0)), dtype=tdtype)  # (T, m, n_x)
    h0 = torch.tensor(np.ascontiguousarray(a0.T)[None], dtype=tdtype, requires_grad=True)
    state = (h0, torch.zeros_like(h0, requires_grad=True)) if k.cell_state else h0
    tg = torch.tensor(np.ascontiguousarray(targets.T).reshape(-1))   # step-major, as xs
    params = list(core.parameters()) + list(linear.parameters()) + [h0]
    n_y = linear.out_features
    cols = _columns(case)

    def call():
        for q in params:
            q.grad = None
        out, _ = core(xs, state)
        loss = torch.nn.functional.cross_entropy(linear(out).reshape(-1, n_y), tg,
                                                 reduction="sum")
        loss.backward()
        return loss

    def outputs(loss):
        def g(t):
            return t.grad.detach().numpy().astype(np.float64) / cols
        return {"lg_loss": float(loss.detach()) / cols,
                "lg_weight_ih": g(core.weight_ih_l0), "lg_weight_hh": g(core.weight_hh_l0),
                "lg_bias_ih": g(core.bias_ih_l0), "lg_weight_out": g(linear.weight),
                "lg_bias_out": g(linear.bias),
                "lg_da0": h0.grad[0].detach().numpy().T.astype(np.float64)}
    return Impl("torch", f"torch nn.{k.torch_module}+Linear backward", call, outputs)


def train_impls(model, case, cell, n_threads, peers):
    """The ``train`` workload's :class:`~fastrnn._bench.impls.Impl` list (module docstring);
    ``n_threads`` only counts for PyTorch (set by the caller), fastrnn runs on one."""
    k = kind(model)
    p, x, a0 = case["parameters"], case["x"], case["a0"]
    da, targets = training_inputs(case)
    cols = _columns(case)
    fwd = getattr(fastrnn, k.name + "_forward")
    bwd = getattr(fastrnn, k.name + "_backward")
    ref_fwd = getattr(reference, k.name + "_forward")
    ref_bwd = getattr(reference, k.name + "_backward")
    caches = fwd(x, a0, p)[-1]
    with _reference_context():
        ref_caches = ref_fwd(x, a0, p)[-1]
    net = getattr(fastrnn, k.model)(p)
    out = _backward_outputs(cols)
    impls = [
        Impl("fastrnn", f"fastrnn.{k.name}_backward", lambda: bwd(da, caches), out),
        Impl("forward", f"fastrnn.{k.name}_forward", lambda: fwd(x, a0, p), _seq_outputs(k)),
        Impl("model", f"fastrnn.{k.model}.loss_and_grads",
             lambda: net.loss_and_grads(x, targets, a0), _lg_outputs(k, cols)),
        Impl("reference", f"reference.{k.name}_backward", lambda: ref_bwd(da, ref_caches), out,
             _reference_context),
    ]
    if "torch" in peers:
        impls.append(_torch_impl(k, case))
    return impls


def train_want(model, case, cell=False):
    """The float64 reference's outputs of the ``train`` workload: the forward's ``a``, ``y``
    (``c``), the backward's ``bwd_*``, and ``lg_*`` from ``reference.*_loss_and_grads``."""
    k = kind(model)
    da, targets = training_inputs(case)
    p = {key: np.asarray(v, np.float64) for key, v in case["parameters"].items()}
    x, a0 = np.asarray(case["x"], np.float64), np.asarray(case["a0"], np.float64)
    cols = _columns(case)
    with _reference_context():
        res = getattr(reference, k.name + "_forward")(x, a0, p)
        want = _seq_outputs(k)(res)
        grads = getattr(reference, k.name + "_backward")(np.asarray(da, np.float64), res[-1])
        want.update(_backward_outputs(cols)(grads))
        lg = getattr(reference, k.name + "_loss_and_grads")
        args = (x, targets, a0) + ((np.zeros_like(a0),) if k.cell_state else ()) + (p,)
        want.update(_lg_outputs(k, cols)(lg(*args)))
    return want


def train_flops(model, shape):
    """GEMM FLOPs of one backward pass: the recurrent product, dx and the weight gradients,
    ``4*G*n_a*(n_a + n_x)*m*T_x`` (twice the forward's recurrent and input work)."""
    n_x, n_a, n_y, m, T_x = shape
    return 4 * kind(model).gates * n_a * (n_a + n_x) * m * T_x
