"""Models saved without pickle: an ``.npz`` of the lessons' parameter keys plus a JSON header.

One direction of layer 0 is stored under the lessons' own keys (so a one-layer model's file
*is* its ``parameters`` dict); layer ``l > 0`` adds ``_l{l}`` and the reverse direction
``_reverse`` to each key, as PyTorch names its weights.  The header (key ``__fastrnn__``, a
JSON string) records the format version, the model class, cell kind, dtype, layers and
directions.  :func:`load` reads with ``allow_pickle=False``.
"""
import json
import os

import numpy as np

from fastrnn.io._spec import HEAD_KEYS, KEYS, Spec

__all__ = ["save", "load", "FORMAT_VERSION"]

FORMAT_VERSION = 1
HEADER = "__fastrnn__"


def _key(name, layer, direction):
    return name + (f"_l{layer}" if layer else "") + ("_reverse" if direction == "reverse"
                                                        else "")


def _params(model):
    """A fastrnn.RNN, LSTM or GRU's parameters, in its dtype (the float64 copies the model
    gives its checked mode convert back exactly)."""
    return {k: np.asarray(v, dtype=model.dtype)
            for k, v in model._reference_parameters().items()}


def _composed(model):
    """(header, arrays) of a fastrnn.Stack or fastrnn.Bidirectional."""
    import fastrnn

    layers = model.layers if isinstance(model, fastrnn.Stack) else (model,)
    arrays, directions = {}, []
    for l, layer in enumerate(layers):
        dirs = layer.directions if isinstance(layer, fastrnn.Bidirectional) else (layer,)
        directions.append(len(dirs))
        for d, direction in zip(dirs, ("forward", "reverse")):
            arrays.update({_key(k, l, direction): v for k, v in _params(d).items()})
    first = layers[0].directions[0] if directions[0] == 2 else layers[0]
    if getattr(model, "_head", None) is not None:
        arrays["Wy"], arrays["by"] = (np.asarray(v) for v in model._head)
    options = {tuple(sorted(d._cell_options().items())) for layer in layers for d in
               (layer.directions if isinstance(layer, fastrnn.Bidirectional) else (layer,))}
    if len(options) > 1:
        raise ValueError(f"cannot save a stack whose layers differ in their cell options "
                         f"({sorted(options)})")
    return {"model": type(model).__name__, "kind": first._kind, "layers": directions,
            **first._cell_options()}, arrays


def save(model, path):
    """Write ``model`` to ``path`` as an ``.npz`` (no pickle); :func:`load` reads it back.

    Parameters
    ----------
    model : fastrnn.RNN, LSTM, GRU, Stack, Bidirectional or a model returned by an importer
    path : str, os.PathLike or a binary file object
        Written as given (no extension is added).
    """
    import fastrnn
    from fastrnn.io._model import Imported

    if isinstance(model, Imported):
        s = model.spec
        header = {"model": "Imported", "kind": s.kind, "activation": s.activation,
                  "layers": s.num_layers, "directions": list(s.directions),
                  "head": s.head is not None, "cell": s.cell, "reset_after": s.reset_after}
        arrays = {}
        for l, layer in enumerate(s.layers):
            for direction, params in zip(s.directions, layer):
                arrays.update({_key(k, l, direction): v for k, v in params.items()})
        if s.head is not None:
            arrays.update(s.head)
    elif isinstance(model, (fastrnn.RNN, fastrnn.LSTM, fastrnn.GRU)):
        header = {"model": type(model).__name__, "kind": model._kind,
                  **model._cell_options()}
        arrays = _params(model)
    elif isinstance(model, (fastrnn.Stack, fastrnn.Bidirectional)):
        header, arrays = _composed(model)
    else:
        raise TypeError(f"model must be a fastrnn model (RNN, LSTM, GRU, Stack, Bidirectional "
                        f"or an imported one), got {type(model).__name__}")
    dtype = model.directions[0].dtype if isinstance(model, fastrnn.Bidirectional) \
        else model.dtype
    header.update(format="fastrnn", version=FORMAT_VERSION, dtype=dtype.name)
    arrays[HEADER] = np.array(json.dumps(header, sort_keys=True))
    if isinstance(path, (str, os.PathLike)):
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    else:
        np.savez(path, **arrays)


def load(path):
    """Read a model written by ``model.save(path)``; needs neither torch nor Keras.

    Parameters
    ----------
    path : str, os.PathLike or a binary file object

    Returns
    -------
    fastrnn.RNN, LSTM, GRU, Stack, Bidirectional or fastrnn.io.Imported
        The class that was saved, with the same weights and dtype.
    """
    import fastrnn
    from fastrnn.io._model import Imported

    with np.load(path, allow_pickle=False) as f:
        if HEADER not in f.files:
            raise ValueError(f"{path!r} is not a fastrnn model file: no {HEADER!r} header "
                             f"(keys {sorted(f.files)[:8]})")
        try:
            header = json.loads(str(f[HEADER]))
        except ValueError as exc:
            raise ValueError(f"{path!r}: unreadable fastrnn header: {exc}") from None
        arrays = {k: f[k] for k in f.files if k != HEADER}
    if not isinstance(header, dict) or header.get("format") != "fastrnn" \
            or not isinstance(header.get("version"), int):
        raise ValueError(f"{path!r} is not a fastrnn model file (header {header})")
    if header["version"] > FORMAT_VERSION:
        raise ValueError(f"{path!r} has format version {header['version']}; this fastrnn "
                         f"reads versions up to {FORMAT_VERSION}: upgrade fastrnn")
    missing = [k for k in ("kind", "dtype", "model") if k not in header]
    if missing:
        raise ValueError(f"{path!r}: the fastrnn header lacks {missing} (header {header})")
    kind, dtype, model = header["kind"], header["dtype"], header["model"]

    def get(key):
        if key not in arrays:
            raise ValueError(f"{path!r} is missing the array {key!r} its header promises")
        return arrays[key]

    classes = {"rnn": fastrnn.RNN, "lstm": fastrnn.LSTM, "gru": fastrnn.GRU}
    if kind not in classes:
        raise ValueError(f"{path!r}: unknown cell kind {kind!r}")
    options = ({"reset_after": bool(header.get("reset_after", True))} if kind == "gru" else
               {"nonlinearity": header.get("nonlinearity", "tanh")} if kind == "rnn" else {})
    cls = lambda params, dtype: classes[kind](params, dtype=dtype, **options)  # noqa: E731
    if model in ("RNN", "LSTM", "GRU"):
        return cls(arrays, dtype=dtype)
    if model in ("Stack", "Bidirectional"):
        counts = header.get("layers")
        if not isinstance(counts, list) or not counts or any(D not in (1, 2) for D in counts):
            raise ValueError(f"{path!r}: the fastrnn header's 'layers' must list each layer's "
                             f"directions (1 or 2), got {counts!r}")
        layers = []
        for l, D in enumerate(counts):
            dirs = [cls({k: get(_key(k, l, d)) for k in KEYS[kind]}, dtype=dtype)
                    for d in ("forward", "reverse")[:D]]
            layers.append(dirs[0] if D == 1 else fastrnn.Bidirectional(*dirs))
        if model == "Bidirectional":
            return layers[0]
        head = {"Wy": get("Wy"), "by": get("by")} if "Wy" in arrays else None
        return fastrnn.Stack(layers, head=head)
    if model != "Imported":
        raise ValueError(f"{path!r} holds a {model!r} model, which this fastrnn cannot load")
    try:
        directions, n_layers = tuple(header["directions"]), int(header["layers"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{path!r}: the fastrnn header lacks valid 'directions' and 'layers' "
                         f"(header {header})") from None
    layers = [[{k: get(_key(k, l, d)) for k in KEYS[kind]} for d in directions]
              for l in range(n_layers)]
    head = {k: get(k) for k in HEAD_KEYS[kind]} if header.get("head") else None
    return Imported(Spec(kind, layers, directions=directions,
                         activation=header.get("activation", "tanh"), head=head,
                         cell=header.get("cell", False),
                         reset_after=bool(header.get("reset_after", True)), dtype=dtype))
