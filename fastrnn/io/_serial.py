"""Models saved without pickle: an ``.npz`` of the lessons' parameter keys plus a JSON header.

One direction of layer 0 is stored under the lessons' own keys (so a one-layer model's file
*is* its ``parameters`` dict); layer ``l > 0`` adds ``_l{l}`` and the reverse direction
``_reverse`` to each key, as PyTorch names its weights.  The header (key ``__fastrnn__``, a
JSON string) records the format version, the model class, cell kind, dtype, layers and
directions.  :func:`load` reads with ``allow_pickle=False``.
"""
import json
import os
import zipfile
import zlib

import numpy as np

from fastrnn.io._spec import ACTIVATIONS, DIRECTIONS, HEAD_KEYS, KEYS, Spec

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
            "head": "Wy" in arrays, **first._cell_options()}, arrays


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
                  "head": model.has_head, **model._cell_options()}
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


def _bad(path, what):
    return ValueError(f"{path!r} is not a fastrnn model file we can read: {what}")


def _read(path):
    """(header, arrays) of a model file; ValueError for anything that is not one."""
    own = isinstance(path, (str, os.PathLike))
    stream = open(path, "rb") if own else path  # closed here even when np.load fails
    try:
        try:
            archive = np.load(stream, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise _bad(path, f"{type(exc).__name__}: {exc}") from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise _bad(path, "a single array, not an .npz archive")
        with archive as f:
            if HEADER not in f.files:
                raise ValueError(f"{path!r} is not a fastrnn model file: no {HEADER!r} "
                                 f"header (keys {sorted(f.files)[:8]})")
            try:
                text = str(f[HEADER])
                arrays = {k: f[k] for k in f.files if k != HEADER}
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
                raise _bad(path, f"{type(exc).__name__}: {exc}") from None
    finally:
        if own:
            stream.close()
    try:
        return json.loads(text), arrays
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{path!r}: unreadable fastrnn header: {type(exc).__name__}: "
                         f"{exc}") from None


def _option(path, header, name, allowed, default):
    """Header option ``name``: one of ``allowed`` (compared with its type: True is not 1)."""
    value = header.get(name, default)
    if not any(type(value) is type(a) and value == a for a in allowed):
        raise _bad(path, f"header {name!r} must be one of {list(allowed)}, got {value!r}")
    return value


def load(path):
    """Read a model written by ``model.save(path)``; needs neither torch nor Keras.

    Parameters
    ----------
    path : str, os.PathLike or a binary file object

    Returns
    -------
    fastrnn.RNN, LSTM, GRU, Stack, Bidirectional or fastrnn.io.Imported
        The class that was saved, with the same weights and dtype.

    Raises
    ------
    ValueError
        Not a fastrnn model file, a newer format, or a header and arrays that do not agree
        (an option of the wrong type, an array missing, or one the header does not account
        for).
    """
    import fastrnn
    from fastrnn.io._model import Imported

    header, arrays = _read(path)
    if not isinstance(header, dict) or header.get("format") != "fastrnn" \
            or type(header.get("version")) is not int:
        raise ValueError(f"{path!r} is not a fastrnn model file (header {header})")
    if header["version"] > FORMAT_VERSION:
        raise ValueError(f"{path!r} has format version {header['version']}; this fastrnn "
                         f"reads versions up to {FORMAT_VERSION}: upgrade fastrnn")
    missing = [k for k in ("kind", "dtype", "model") if k not in header]
    if missing:
        raise ValueError(f"{path!r}: the fastrnn header lacks {missing} (header {header})")
    kind = _option(path, header, "kind", ("rnn", "lstm", "gru"), None)
    dtype = _option(path, header, "dtype", ("float32", "float64"), None)
    model = _option(path, header, "model",
                    ("RNN", "LSTM", "GRU", "Stack", "Bidirectional", "Imported"), None)
    used = set()

    def get(key):
        if key not in arrays:
            raise ValueError(f"{path!r} is missing the array {key!r} its header promises")
        used.add(key)
        return arrays[key]

    def head_of(keys, saved_with_it):
        # files written before the header recorded the head: whatever arrays there are
        present = saved_with_it if "head" in header else any(k in arrays for k in keys)
        return {k: get(k) for k in keys} if present else None

    has_head = _option(path, header, "head", (True, False), None) if "head" in header \
        else None
    options = ({"reset_after": _option(path, header, "reset_after", (True, False), True)}
               if kind == "gru" else
               {"nonlinearity": _option(path, header, "nonlinearity", ("tanh", "relu"),
                                        "tanh")} if kind == "rnn" else {})
    cls = {"rnn": fastrnn.RNN, "lstm": fastrnn.LSTM, "gru": fastrnn.GRU}[kind]

    def direction(params):
        return cls(params, dtype=dtype, **options)

    if model in ("RNN", "LSTM", "GRU"):
        if model.lower() != kind:
            raise _bad(path, f"a {model} model of kind {kind!r}")
        params = {k: get(k) for k in KEYS[kind]}
        params.update(head_of(HEAD_KEYS[kind], has_head) or {})
        result = direction(params)
    elif model in ("Stack", "Bidirectional"):
        counts = header.get("layers")
        if (not isinstance(counts, list) or not counts
                or any(type(D) is not int or D not in (1, 2) for D in counts)
                or (model == "Bidirectional" and counts != [2])):
            raise ValueError(f"{path!r}: the fastrnn header's 'layers' must list each layer's "
                             f"directions (1 or 2), got {counts!r}")
        layers = []
        for l, D in enumerate(counts):
            dirs = [direction({k: get(_key(k, l, d)) for k in KEYS[kind]})
                    for d in ("forward", "reverse")[:D]]
            layers.append(dirs[0] if D == 1 else fastrnn.Bidirectional(*dirs))
        if model == "Bidirectional":
            result = layers[0]
        else:
            result = fastrnn.Stack(layers, head=head_of(("Wy", "by"), has_head))
    else:
        try:
            directions, n_layers = tuple(header["directions"]), header["layers"]
        except (KeyError, TypeError):
            directions, n_layers = None, None
        if type(n_layers) is not int or n_layers < 1 or directions not in DIRECTIONS:
            raise ValueError(f"{path!r}: the fastrnn header lacks valid 'directions' and "
                             f"'layers' (header {header})")
        layers = [[{k: get(_key(k, l, d)) for k in KEYS[kind]} for d in directions]
                  for l in range(n_layers)]
        head = ({k: get(k) for k in HEAD_KEYS[kind]}
                if _option(path, header, "head", (True, False), False) else None)
        result = Imported(Spec(
            kind, layers, directions=directions,
            activation=_option(path, header, "activation", ACTIVATIONS, "tanh"), head=head,
            cell=_option(path, header, "cell", (True, False), False),
            reset_after=_option(path, header, "reset_after", (True, False), True),
            dtype=dtype))
    extra = sorted(set(arrays) - used)
    if extra:
        raise _bad(path, f"arrays its header does not account for: {extra[:8]}")
    return result
