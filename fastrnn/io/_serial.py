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


def _name(path):
    """How messages name a file: its path, or a file object's name."""
    return repr(getattr(path, "name", path))


def _bad(path, what):
    return ValueError(f"{_name(path)} is not a fastrnn model file we can read: {what}")


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
                raise ValueError(f"{_name(path)} is not a fastrnn model file: no {HEADER!r} "
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
        raise ValueError(f"{_name(path)}: unreadable fastrnn header: {type(exc).__name__}: "
                         f"{exc}") from None


class _File:
    """A model file's header and arrays as :func:`load` reads them: each option checked by
    type, each array taken once (what is never taken is left over)."""

    def __init__(self, path, header, arrays):
        self.path, self.header, self.arrays, self.used = path, header, arrays, set()

    def option(self, name, allowed, default=None):
        """Header option ``name``: one of ``allowed``, compared with its type (True is not
        1, "false" is not False)."""
        value = self.header.get(name, default)
        if not any(type(value) is type(a) and value == a for a in allowed):
            raise _bad(self.path, f"header {name!r} must be one of {list(allowed)}, got "
                                  f"{value!r}")
        return value

    def get(self, key):
        if key not in self.arrays:
            raise ValueError(f"{_name(self.path)} is missing the array {key!r} its header "
                             f"promises")
        self.used.add(key)
        return self.arrays[key]

    def params(self, kind, layer=0, direction="forward"):
        return {k: self.get(_key(k, layer, direction)) for k in KEYS[kind]}

    def head(self, keys):
        """The output layer's arrays, or None.  Files written before the header recorded
        it: whatever arrays there are."""
        present = (self.option("head", (True, False)) if "head" in self.header
                   else any(k in self.arrays for k in keys))
        return {k: self.get(k) for k in keys} if present else None

    def left_over(self):
        extra = sorted(set(self.arrays) - self.used)
        if extra:
            raise _bad(self.path, f"arrays its header does not account for: {extra[:8]}")


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
    header, arrays = _read(path)
    if not isinstance(header, dict) or header.get("format") != "fastrnn" \
            or type(header.get("version")) is not int:
        raise ValueError(f"{_name(path)} is not a fastrnn model file (header {header})")
    if header["version"] > FORMAT_VERSION:
        raise ValueError(f"{_name(path)} has format version {header['version']}; this fastrnn "
                         f"reads versions up to {FORMAT_VERSION}: upgrade fastrnn")
    f = _File(path, header, arrays)  # a missing kind, model or dtype: not one of the allowed
    kind = f.option("kind", ("rnn", "lstm", "gru"))
    model = f.option("model", ("RNN", "LSTM", "GRU", "Stack", "Bidirectional", "Imported"))
    dtype = f.option("dtype", ("float32", "float64"))
    result = (_load_imported(f, kind, dtype) if model == "Imported" else
              _load_native(f, model, kind, dtype))
    f.left_over()
    return result


def _load_native(f, model, kind, dtype):
    """A fastrnn.RNN, LSTM, GRU, Stack or Bidirectional from its file."""
    import fastrnn

    options = ({"reset_after": f.option("reset_after", (True, False), True)} if kind == "gru"
               else {"nonlinearity": f.option("nonlinearity", ACTIVATIONS, "tanh")}
               if kind == "rnn" else {})
    cls = {"rnn": fastrnn.RNN, "lstm": fastrnn.LSTM, "gru": fastrnn.GRU}[kind]
    if model in ("RNN", "LSTM", "GRU"):
        if model.lower() != kind:
            raise _bad(f.path, f"a {model} model of kind {kind!r}")
        return cls({**f.params(kind), **(f.head(HEAD_KEYS[kind]) or {})}, dtype=dtype,
                   **options)
    counts = f.header.get("layers")
    if (not isinstance(counts, list) or not counts
            or any(type(D) is not int or D not in (1, 2) for D in counts)
            or (model == "Bidirectional" and counts != [2])):
        raise ValueError(f"{_name(f.path)}: the fastrnn header's 'layers' must list each "
                         f"layer's directions (1 or 2), got {counts!r}")
    layers = []
    for l, D in enumerate(counts):
        dirs = [cls(f.params(kind, l, d), dtype=dtype, **options)
                for d in ("forward", "reverse")[:D]]
        layers.append(dirs[0] if D == 1 else fastrnn.Bidirectional(*dirs))
    if model == "Bidirectional":
        return layers[0]
    return fastrnn.Stack(layers, head=f.head(("Wy", "by")))


def _load_imported(f, kind, dtype):
    """A fastrnn.io.Imported from its file."""
    from fastrnn.io._model import Imported

    try:
        directions, n_layers = tuple(f.header["directions"]), f.header["layers"]
    except (KeyError, TypeError):
        directions, n_layers = None, None
    if type(n_layers) is not int or n_layers < 1 or directions not in DIRECTIONS:
        raise ValueError(f"{_name(f.path)}: the fastrnn header lacks valid 'directions' and "
                         f"'layers' (header {f.header})")
    layers = [[f.params(kind, l, d) for d in directions] for l in range(n_layers)]
    return Imported(Spec(kind, layers, directions=directions,
                         activation=f.option("activation", ACTIVATIONS, "tanh"),
                         head=f.head(HEAD_KEYS[kind]),
                         cell=f.option("cell", (True, False), False),
                         reset_after=f.option("reset_after", (True, False), True),
                         dtype=dtype))
