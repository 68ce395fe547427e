"""Score a synthetic data set of sequences with a fastrnn LSTM on a Dask cluster.

    python examples/score_dask.py                    # a LocalCluster of 2 worker processes
    python examples/score_dask.py --workers 4 --m 20000
    python examples/score_dask.py --scheduler tcp://10.0.0.5:8786   # a running cluster

The data set (n_x, m, T_x) is generated on the workers (it never exists in this process) in
chunks of ``--chunk`` sequences (by default fastrnn.dask.chunk_size's: about half a second
of work each), scored with ``fastrnn.dask.forward`` (a progress bar shows
the tasks), and reduced to one predicted class per sequence (the argmax of the last step's
softmax), which comes back here.  Then the same computation runs in this process alone, with
Dask's synchronous scheduler, for the throughput comparison, and the two answers are
compared.
"""
import argparse
import time

import dask
import dask.array as da
import numpy as np
from dask.distributed import Client, LocalCluster, progress, wait

import fastrnn
import fastrnn.dask


def lstm_parameters(n_x, n_a, n_y, seed=0):
    rng = np.random.default_rng(seed)
    s = 1 / np.sqrt(n_a + n_x)
    p = {"W" + g: rng.standard_normal((n_a, n_a + n_x)) * s for g in "fico"}
    p.update({"b" + g: rng.standard_normal((n_a, 1)) for g in "fico"})
    p["Wy"], p["by"] = rng.standard_normal((n_y, n_a)), rng.standard_normal((n_y, 1))
    return p


def score(model, x):
    """The predicted class of each sequence: (m,) int, lazily."""
    a, y, c = fastrnn.dask.forward(model, x)
    return y[:, :, -1].argmax(axis=0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scheduler", help="address of a running Dask scheduler "
                        "(default: start a LocalCluster on this machine)")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    parser.add_argument("--m", type=int, default=4096, help="sequences in the data set")
    parser.add_argument("--chunk", type=int, default=None, help="sequences per chunk (task); "
                        "default: fastrnn.dask.chunk_size's, about 0.5 s of work each")
    parser.add_argument("--shape", type=int, nargs=4, default=(128, 256, 32, 100),
                        metavar=("N_X", "N_A", "N_Y", "T_X"))
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--no-local", action="store_true",
                        help="skip the single-process run")
    args = parser.parse_args()
    n_x, n_a, n_y, T = args.shape
    if args.scheduler:
        cluster, client = None, Client(args.scheduler)
    else:
        # one thread per worker: fastrnn runs each task on one thread with one-thread BLAS
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True)
        client = Client(cluster)
    n_workers = len(client.scheduler_info()["workers"])
    print(f"cluster: {n_workers} workers, dashboard {client.dashboard_link}")

    model = fastrnn.LSTM(lstm_parameters(n_x, n_a, n_y), dtype=args.dtype)
    # chunks long enough that a task's overhead (milliseconds) is small next to its work:
    # chunk_size reads only the shape and dtype of the lazy array it is given
    shape = (n_x, args.m, T)
    chunk = args.chunk or fastrnn.dask.chunk_size(model, da.empty(shape, dtype=args.dtype))
    x = da.random.default_rng(1).standard_normal(shape, chunks=(-1, chunk, -1),
                                                 dtype=args.dtype)
    print(f"data set: x {x.shape} {x.dtype}, {x.nbytes / 2**20:.0f} MiB in "
          f"{x.numblocks[1]} chunks of {chunk} sequences ({model})")

    labels = score(model, x)
    score(model, x[:, :chunk]).compute()  # warm-up: the workers import fastrnn
    t0 = time.perf_counter()
    future = client.compute(labels)
    progress(future)
    wait(future)
    got = future.result()
    t_cluster = time.perf_counter() - t0
    print(f"\ncluster: {args.m / t_cluster:9.1f} sequences/s ({t_cluster:.2f} s)")
    print("class counts:", np.bincount(got, minlength=n_y))

    if not args.no_local:
        t0 = time.perf_counter()
        # (the graph built under the synchronous scheduler: with the client current, forward
        # sends the model to the cluster's workers, and the graph needs the cluster)
        with dask.config.set(scheduler="synchronous"):
            want = score(model, x).compute()
        t_local = time.perf_counter() - t0
        print(f"1 process: {args.m / t_local:9.1f} sequences/s ({t_local:.2f} s); "
              f"cluster speed-up {t_local / t_cluster:.2f}x; same classes: "
              f"{np.array_equal(got, want)}")
    client.close()
    if cluster is not None:
        cluster.close()


if __name__ == "__main__":
    main()
