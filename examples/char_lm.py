"""Train a character-level language model with fastrnn alone.

The model is the lessons' RNN or LSTM with a softmax output over the characters: each step
reads one character (one-hot) and predicts the next.  Every iteration takes a batch of
random windows of the corpus, computes the summed cross-entropy and every gradient with
``model.loss_and_grads`` (compiled forward, output layer and backpropagation through time),
and updates the weights in place with ``model.apply_gradients`` (gradient descent with the
lessons' value clipping).  It prints a progress bar (loss per character, characters per
second), samples text every so often and at the end, and saves the weights (``--save``;
``--load`` continues from them).  ``--compare`` also times the same loop written with the
lessons' numpy functions (``fastrnn.reference``) and prints the speedup per character.

The corpus (``sonnets.txt``, next to this file) is twenty of Shakespeare's sonnets (1609,
public domain), 12 KB.  Run ``python examples/char_lm.py --help`` for the options.
"""
import argparse
import os
import sys
import time

import numpy as np

import fastrnn
from fastrnn import reference

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "sonnets.txt")


def load_corpus(path):
    text = open(path, encoding="utf-8").read()
    chars = sorted(set(text))
    return text, chars, {ch: k for k, ch in enumerate(chars)}


def init_parameters(kind, n_x, n_a, n_y, rng):
    """Small random weights in the lessons' layout (the LSTM's forget-gate bias at 1)."""
    if kind == "rnn":
        return {"Wax": rng.standard_normal((n_a, n_x)) * 0.01,
                "Waa": rng.standard_normal((n_a, n_a)) * 0.01,
                "Wya": rng.standard_normal((n_y, n_a)) * 0.01,
                "ba": np.zeros((n_a, 1)), "by": np.zeros((n_y, 1))}
    scale = 1 / np.sqrt(n_a + n_x)
    p = {"W" + g: rng.standard_normal((n_a, n_a + n_x)) * scale for g in "fico"}
    p.update({"b" + g: np.zeros((n_a, 1)) for g in "fico"})
    p["bf"][:] = 1.0
    p["Wy"] = rng.standard_normal((n_y, n_a)) * 0.01
    p["by"] = np.zeros((n_y, 1))
    return p


def batch(ids, n_x, m, T, rng):
    """m random windows: x (n_x, m, T) one-hot, targets (m, T) the next characters."""
    starts = rng.integers(0, len(ids) - T - 1, size=m)
    window = ids[starts[:, None] + np.arange(T + 1)]          # (m, T + 1)
    x = np.zeros((n_x, m, T))
    x[window[:, :-1], np.arange(m)[:, None], np.arange(T)] = 1.0
    return x, window[:, 1:]


def sample(model, chars, start, n, rng, temperature=0.8):
    """n characters generated one step at a time (``model.step``) after ``start``."""
    index = {ch: k for k, ch in enumerate(chars)}
    state, out = None, []
    xt = np.zeros((len(chars), 1), dtype=model.dtype)
    for ch in start:                                          # warm up on the prompt
        xt[:] = 0
        xt[index[ch], 0] = 1
        state, y = model.step(xt, state)
    for _ in range(n):
        logp = np.log(np.maximum(y[:, 0].astype(np.float64), 1e-30)) / temperature
        p = np.exp(logp - logp.max())
        k = rng.choice(len(chars), p=p / p.sum())
        out.append(chars[k])
        xt[:] = 0
        xt[k, 0] = 1
        state, y = model.step(xt, state)
    return start + "".join(out)


def save(path, model, chars):
    np.savez(path, chars=np.array(chars), kind=model._kind, **model.parameters())


def load(path):
    with np.load(path) as f:
        chars = [str(c) for c in f["chars"]]
        kind = str(f["kind"])
        params = {k: f[k] for k in f.files if k not in ("chars", "kind")}
    return (fastrnn.RNN if kind == "rnn" else fastrnn.LSTM)(params), kind, chars


def progress(it, iters, loss, rate, width=30):
    done = int(width * it / iters)
    sys.stdout.write(f"\r[{'#' * done}{'.' * (width - done)}] {it}/{iters}  "
                     f"loss {loss:.3f}/char  {rate:,.0f} chars/s ")
    sys.stdout.flush()


def train(model, ids, chars, opts, rng):
    n_x, m, T = len(chars), opts.batch, opts.seq_len
    lr = opts.lr / (m * T)                  # the loss is summed over m*T characters
    smooth = np.log(n_x)
    t0 = time.perf_counter()
    for it in range(1, opts.iters + 1):
        x, targets = batch(ids, n_x, m, T, rng)
        loss, grads = model.loss_and_grads(x, targets)
        model.apply_gradients(grads, lr, clip=opts.clip)
        smooth = 0.9 * smooth + 0.1 * loss / (m * T)
        if it % 50 == 0 or it == opts.iters:
            progress(it, opts.iters, smooth, it * m * T / (time.perf_counter() - t0))
        if opts.sample_every and it % opts.sample_every == 0 and it < opts.iters:
            print(f"\n--- sample after {it} iterations ---\n"
                  f"{sample(model, chars, opts.prompt, opts.sample_len, rng)}\n---")
    print()
    return smooth, opts.iters * m * T / (time.perf_counter() - t0)


def compare(kind, params, ids, chars, opts, rng):
    """Characters per second of the same training loop in the lessons' numpy and in
    fastrnn (same batches, same update), each for --compare-iters iterations; by wall time
    and by CPU time (the steadier figure on a busy machine: both loops run on one thread)."""
    n_x, m, T = len(chars), opts.batch, opts.seq_len
    lr = opts.lr / (m * T)
    batches = [batch(ids, n_x, m, T, rng) for _ in range(opts.compare_iters)]
    a0 = np.zeros((params["Wy" if kind == "lstm" else "Wya"].shape[1], m))
    chars_run = len(batches) * m * T

    def numpy_loop():
        p = {k: v.copy() for k, v in params.items()}
        for x, targets in batches:
            if kind == "rnn":
                loss, grads = reference.rnn_loss_and_grads(x, targets, a0, p)
            else:
                loss, grads = reference.lstm_loss_and_grads(x, targets, a0, a0, p)
            for k in p:                      # the lessons' clip, then gradient descent
                p[k] -= lr * np.clip(grads["d" + k], -opts.clip, opts.clip)

    model = (fastrnn.RNN if kind == "rnn" else fastrnn.LSTM)(params, dtype=opts.dtype)

    def fastrnn_loop():
        for x, targets in batches:
            _, grads = model.loss_and_grads(x, targets)
            model.apply_gradients(grads, lr, clip=opts.clip)

    model.loss_and_grads(*batches[0])        # warm-up (buffers)
    rates = {}
    for name, loop in (("numpy", numpy_loop), ("fastrnn", fastrnn_loop)):
        w0, c0 = time.perf_counter(), time.process_time()
        loop()
        rates[name] = (chars_run / (time.perf_counter() - w0),
                       chars_run / max(time.process_time() - c0, 1e-9))
    (nw, nc), (fw, fc) = rates["numpy"], rates["fastrnn"]
    print(f"compare ({kind}, n_a={a0.shape[0]}, batch {m} x {T} chars, fastrnn in "
          f"{opts.dtype}, numpy in float64, {len(batches)} iterations each):\n"
          f"  wall time: lessons' numpy {nw:,.0f} chars/s, fastrnn {fw:,.0f} chars/s: "
          f"{fw / nw:.1f}x faster per character\n"
          f"  CPU time:  lessons' numpy {nc:,.0f} chars/s, fastrnn {fc:,.0f} chars/s: "
          f"{fc / nc:.1f}x faster per character")
    return rates


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=("rnn", "lstm"), default="rnn")
    parser.add_argument("--hidden", type=int, default=100, help="n_a (default 100)")
    parser.add_argument("--iters", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=1,
                        help="windows per iteration (the lessons train on one at a time)")
    parser.add_argument("--seq-len", type=int, default=50, help="characters per window")
    parser.add_argument("--lr", type=float, default=0.2,
                        help="learning rate per character (divided by batch*seq-len)")
    parser.add_argument("--clip", type=float, default=5.0, help="gradient value clip")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--sample-every", type=int, default=2500)
    parser.add_argument("--sample-len", type=int, default=200)
    parser.add_argument("--prompt", default="Shall I ")
    parser.add_argument("--corpus", default=CORPUS)
    parser.add_argument("--save", help="save the weights here (.npz) at the end")
    parser.add_argument("--load", help="start from weights saved with --save")
    parser.add_argument("--compare", action="store_true",
                        help="also time the same loop in the lessons' numpy")
    parser.add_argument("--compare-iters", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    opts = parser.parse_args(argv)
    try:  # small matrices: BLAS threads cost more than they give
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:
        pass

    rng = np.random.default_rng(opts.seed)
    text, chars, index = load_corpus(opts.corpus)
    ids = np.array([index[ch] for ch in text])
    if opts.load:
        model, kind, saved = load(opts.load)
        if saved != chars:
            parser.error("the saved model was trained on another character set")
    else:
        kind = opts.model
        params = init_parameters(kind, len(chars), opts.hidden, len(chars), rng)
        model = (fastrnn.RNN if kind == "rnn" else fastrnn.LSTM)(params, dtype=opts.dtype)
    print(f"corpus {os.path.basename(opts.corpus)}: {len(text):,} characters, "
          f"{len(chars)} distinct; model {kind}, n_a = {model.n_a}, {model.dtype}; "
          f"{opts.iters} iterations of {opts.batch} x {opts.seq_len} characters")
    loss, rate = train(model, ids, chars, opts, rng)
    print(f"trained: loss {loss:.3f} per character (uniform guess: {np.log(len(chars)):.3f}), "
          f"{rate:,.0f} characters/s")
    print(f"--- final sample ---\n{sample(model, chars, opts.prompt, opts.sample_len, rng)}\n---")
    if opts.save:
        save(opts.save, model, chars)
        reloaded, _, _ = load(opts.save)
        same = all(np.array_equal(v, reloaded.parameters()[k].astype(v.dtype))
                   for k, v in model.parameters().items())
        print(f"saved to {opts.save} (reloaded: {'identical' if same else 'DIFFERENT'})")
    if opts.compare:
        compare(kind, {k: v.astype(np.float64) for k, v in model.parameters().items()},
                ids, chars, opts, rng)
    return 0


if __name__ == "__main__":
    sys.exit(main())
