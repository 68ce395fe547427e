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


def _lesson_model(model):
    """(header, arrays) of a fastrnn.RNN or fastrnn.LSTM."""
    params = model._reference_parameters()  # float64 copies of the packed weights: exact
    arrays = {k: np.asarray(v, dtype=model.dtype) for k, v in params.items()}
    return {"model": type(model).__name__, "kind": model._kind}, arrays


def save(model, path):
    """Write ``model`` to ``path`` as an ``.npz`` (no pickle); :func:`load` reads it back.

    Parameters
    ----------
    model : fastrnn.RNN, fastrnn.LSTM or a model returned by an importer
    path : str, os.PathLike or a binary file object
        Written as given (no extension is added).
    """
    import fastrnn
    from fastrnn.io._model import Imported

    if isinstance(model, Imported):
        s = model.spec
        header = {"model": "Imported", "kind": s.kind, "activation": s.activation,
                  "layers": s.num_layers, "directions": list(s.directions),
                  "head": s.head is not None, "cell": s.cell}
        arrays = {}
        for l, layer in enumerate(s.layers):
            for direction, params in zip(s.directions, layer):
                arrays.update({_key(k, l, direction): v for k, v in params.items()})
        if s.head is not None:
            arrays.update(s.head)
    elif isinstance(model, (fastrnn.RNN, fastrnn.LSTM)):
        header, arrays = _lesson_model(model)
    else:
        raise TypeError(f"model must be a fastrnn model (RNN, LSTM or an imported one), got "
                        f"{type(model).__name__}")
    header.update(format="fastrnn", version=FORMAT_VERSION, dtype=model.dtype.name)
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
    fastrnn.RNN, fastrnn.LSTM or fastrnn.io.Imported
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
    if header.get("format") != "fastrnn" or not isinstance(header.get("version"), int):
        raise ValueError(f"{path!r} is not a fastrnn model file (header {header})")
    if header["version"] > FORMAT_VERSION:
        raise ValueError(f"{path!r} has format version {header['version']}; this fastrnn "
                         f"reads versions up to {FORMAT_VERSION}: upgrade fastrnn")
    kind, dtype, model = header["kind"], header["dtype"], header["model"]

    def get(key):
        if key not in arrays:
            raise ValueError(f"{path!r} is missing the array {key!r} its header promises")
        return arrays[key]

    if model in ("RNN", "LSTM"):
        cls = getattr(fastrnn, model)
        return cls({k: get(k) for k, _ in cls._weights}, dtype=dtype)
    if model != "Imported":
        raise ValueError(f"{path!r} holds a {model!r} model, which this fastrnn cannot load")
    directions = tuple(header["directions"])
    layers = [[{k: get(_key(k, l, d)) for k in KEYS[kind]} for d in directions]
              for l in range(header["layers"])]
    head = {k: get(k) for k in HEAD_KEYS[kind]} if header["head"] else None
    return Imported(Spec(kind, layers, directions=directions,
                         activation=header["activation"], head=head, cell=header["cell"],
                         dtype=dtype))
