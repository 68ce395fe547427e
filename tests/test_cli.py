"""The ``fastrnn`` command: ``check`` and ``bench``, and the benchmark's helpers."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastrnn
from fastrnn import __main__ as cli
from fastrnn import _api, _bench, _selfcheck, reference

PACKAGE_PARENT = str(Path(fastrnn.__file__).resolve().parent.parent)


def run_cli(*args, timeout=120):
    """``python -m fastrnn ARGS`` in a subprocess importing this fastrnn."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [PACKAGE_PARENT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    # cwd: tests/, so that a source checkout in the cwd cannot shadow the fastrnn under test
    return subprocess.run([sys.executable, "-m", "fastrnn", *args], capture_output=True,
                          text=True, timeout=timeout, env=env,
                          cwd=os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------ check

def test_check_quick_passes_and_prints_the_table():
    proc = run_cli("check", "--quick")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "function" in out and "max abs err" in out and "max rel err" in out
    for f in _selfcheck.FUNCTIONS:
        for d in ("float64", "float32"):
            assert any(line.split()[:2] == [f, d] and line.rstrip().endswith("pass")
                       for line in out.splitlines()), (f, d, out)
    assert "FAIL" not in out


def _rows(out):
    return {tuple(line.split()[:2]): line.rstrip() for line in out.splitlines() if line.strip()}


def test_check_fails_when_a_public_function_disagrees(monkeypatch, capsys):
    """A drop-in function whose hidden states are off by 1e-3 at the last step."""
    right = fastrnn.rnn_forward

    def wrong(x, a0, parameters):
        a, y, caches = right(x, a0, parameters)
        a = a.copy()
        a[..., -1] += 1e-3
        return a, y, caches
    monkeypatch.setattr(fastrnn, "rnn_forward", wrong)
    status = _selfcheck.main(["--quick", "--seed", "3"])
    out = capsys.readouterr().out
    assert status == 1
    rows = _rows(out)
    for d in ("float64", "float32"):
        assert rows[("rnn_forward", d)].endswith("FAIL"), out
        for f in _selfcheck.FUNCTIONS:
            if f != "rnn_forward":
                assert rows[(f, d)].endswith("pass"), out
    assert "FAIL rnn_forward float64" in out and "beyond tolerance" in out
    assert "rows FAIL" in out


def test_check_fails_when_the_reference_disagrees(monkeypatch, capsys):
    """The same through the reference side: every RNN row fails, the LSTM rows pass."""
    right = reference.rnn_cell_forward

    def wrong(xt, a_prev, parameters):
        a_next, yt_pred, cache = right(xt, a_prev, parameters)
        return a_next + 1e-3, yt_pred, cache
    monkeypatch.setattr(reference, "rnn_cell_forward", wrong)
    assert _selfcheck.main(["--quick", "--dtype", "float64"]) == 1
    rows = _rows(capsys.readouterr().out)
    for f in ("rnn_cell_forward", "rnn_forward", "RNN.forward", "RNN.step"):
        assert rows[(f, "float64")].endswith("FAIL")
    for f in ("lstm_cell_forward", "lstm_forward", "LSTM.forward", "LSTM.step"):
        assert rows[(f, "float64")].endswith("pass")


def test_check_reports_a_crash_as_a_failure(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("kernel exploded")
    monkeypatch.setattr(fastrnn, "lstm_forward", broken)
    assert _selfcheck.main(["--quick", "--dtype", "float64"]) == 1
    out = capsys.readouterr().out
    assert "RuntimeError: kernel exploded" in out
    rows = _rows(out)
    assert rows[("lstm_forward", "float64")].endswith("FAIL")
    assert rows[("LSTM.forward", "float64")].endswith("pass")


def test_check_restores_the_threshold_and_checked_mode():
    from fastrnn._kernels import _core

    before = _api.SMALL_BATCH_MAX_M
    panel_before = _core.panel_gemm_enabled()
    with fastrnn.checked():
        tallies = _selfcheck.run_checks(seed=1, quick=True, dtypes=("float64",))
        assert fastrnn.is_checked()
    assert _api.SMALL_BATCH_MAX_M == before
    assert _core.panel_gemm_enabled() == panel_before
    assert all(t.ok for t in tallies.values())
    assert all(t.cases > 0 for t in tallies.values())


def test_tally_relative_error_ignores_tiny_references():
    t = _selfcheck.Tally()
    tol = _selfcheck.TOLERANCES["float64"]
    t.compare("x", np.array([1e-13, 2.0]), np.array([0.0, 2.0 + 1e-10]), tol)
    assert t.ok
    assert t.max_abs == pytest.approx(1e-10, rel=1e-3)
    assert t.max_rel == pytest.approx(5e-11, rel=1e-3)
    t.compare("y", np.array([np.nan, 1.0]), np.array([np.nan, 1.0]), tol)
    assert t.ok
    t.compare("z", np.array([np.nan]), np.array([1.0]), tol)
    t.compare("w", np.zeros(2), np.zeros(3), tol)
    assert len(t.failures) == 2


def test_main_requires_a_subcommand(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([])
    assert exc.value.code == 2
    assert "bench" in capsys.readouterr().err


# ------------------------------------------------------------------ bench

BAD_BENCH_ARGS = [
    (["--seed", "-1"], "--seed"),
    (["--seed", "x"], "--seed"),
    (["--repeat", "-2"], "--repeat"),
    (["--repeat", "0"], "--repeat"),
    (["--min-time", "nan"], "--min-time"),
    (["--min-time", "-0.5"], "--min-time"),
    (["--min-time", "inf"], "--min-time"),
    (["--reference-budget", "-1"], "--reference-budget"),
    (["--threads", "0"], "--threads"),
    (["--shapes", "lesson,huge"], "huge"),
    (["--models", "gru2"], "gru2"),
    (["--dtype", "float16"], "--dtype"),
    (["--json", "/no/such/dir/o.json"], "/no/such/dir"),
    (["--plot", "/no/such/dir/p.png"], "/no/such/dir"),
    (["--plot", "p.txt"], ".png"),
    (["--peers", "tensorflow"], "tensorflow"),
    (["--n-a", "64"], "--sweep"),
    (["--sweep", "--n-a", "0,64"], "--n-a"),
    (["--sweep", "--batch", "x"], "--batch"),
    (["--sweep", "--time-cap", "-1"], "--time-cap"),
    (["--sweep", "--shapes", "mid"], "--sweep"),
    (["--workloads", "inference"], "inference"),
    (["--workers", "2"], "--dask"),
    (["--chunk", "8"], "--dask"),
    (["--dask", "--workers", "0"], "--workers"),
    (["--dask", "--sweep"], "--sweep"),
    (["--dask", "--workloads", "train"], "--workloads"),
    (["--dask", "--shapes", "lesson"], "lesson"),
    (["--dask", "--models", "gru"], "gru"),
]


@pytest.mark.parametrize("args,needle", BAD_BENCH_ARGS,
                         ids=[" ".join(a) for a, _ in BAD_BENCH_ARGS])
def test_bench_rejects_bad_arguments_in_one_line_before_any_work(args, needle, capsys,
                                                                 monkeypatch):
    """Exit status 2 (1 means a failed check), one line on stderr naming the option, and
    nothing run: the GEMM rate (the first work) is never measured."""
    from fastrnn._bench import cli as bench_cli

    def no_work(*a, **k):
        raise AssertionError("work started before the arguments were checked")
    monkeypatch.setattr(bench_cli, "gemm_rate", no_work)
    monkeypatch.setattr(bench_cli, "environment", no_work)
    try:
        status = cli.main(["bench", *args])
    except SystemExit as exc:
        status = exc.code
    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("fastrnn bench: error:") and needle in lines[0]


def test_bench_dask_without_dask_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)     # import fails
    status = cli.main(["bench", "--dask"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert "--dask needs dask and distributed" in err and "pip install" in err


def test_bench_dask_runs_tiny(monkeypatch, tmp_path, capsys):
    """fastrnn bench --dask on one worker, a data set of two chunks, the overhead sweep off
    (--quick): the table and the JSON (no time is asserted)."""
    pytest.importorskip("dask.array", reason="dask is optional")
    pytest.importorskip("distributed", reason="dask's distributed is optional")
    from fastrnn import _dask_bench
    real = _dask_bench._task_overhead
    monkeypatch.setattr(_dask_bench, "_task_overhead",
                        lambda client, n_tasks: real(client, 4))   # 4 empty tasks, not 1000
    path = tmp_path / "dask.json"
    status = cli.main(["bench", "--dask", "--quick", "--shapes", "mid", "--models", "rnn",
                       "--workers", "1", "--chunk", "4", "--sequences", "8",
                       "--json", str(path)])
    out = capsys.readouterr().out
    assert status == 0
    assert "fastrnn.dask: 1 worker processes" in out
    row = next(line for line in out.splitlines() if line.startswith("mid"))
    assert row.split()[:5] == ["mid", "rnn", "float32", "8", "4"]
    data = json.loads(path.read_text())
    assert data["kind"] == "dask" and data["status"] == 0
    case, = data["dask"]["cases"]
    assert (case["shape"], case["kind"], case["m"], case["chunk"]) == ("mid", "rnn", 8, 4)
    assert case["wall_one"] > 0 and case["wall_dask"] > 0 and data["dask"]["sweep"] == []


def test_bench_json_into_a_missing_directory_fails_at_once_from_the_command(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    proc = run_cli("bench", "--json", str(blocker / "o.json"))
    assert proc.returncode == 2
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "--json" in proc.stderr
    proc = run_cli("bench", "--plot", str(tmp_path))          # a directory, not a file
    assert proc.returncode == 2 and "is a directory" in proc.stderr


@pytest.mark.parametrize("args", [["check", "--seed", "-1"], ["check", "--dtype", "int8"],
                                  ["nonsense"]])
def test_check_and_main_reject_bad_arguments_in_one_line(args, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and ": error:" in err


def test_version():
    proc = run_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"fastrnn {fastrnn.__version__}"


def test_help_lists_the_shapes_with_their_sizes_and_no_markup(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name, s in _bench.SHAPES.items():
        line = next(ln for ln in out.splitlines() if ln.split()[:1] == [name])
        assert [int(v) for v in line.split()[1:6]] == list(s), line
    assert "``" not in out and "DESIGN" not in out
    for args in (["--help"], ["check", "--help"]):
        with pytest.raises(SystemExit):
            cli.main(args)
        assert "``" not in capsys.readouterr().out


def test_bench_output_cites_no_unshipped_document(capsys):
    status = _bench.main(["--shapes", "lesson", "--models", "rnn", "--dtype", "float64",
                          "--peers", "none", "--repeat", "1", "--min-time", "0", "--quick"])
    assert status == 0
    out = capsys.readouterr().out
    assert "DESIGN" not in out and "§" not in out
    assert "shapes (n_x, n_a, n_y, m, T_x): lesson (3, 5, 2, 10, 4)" in out

def test_bench_quick_lesson_writes_json(tmp_path):
    path = tmp_path / "bench.json"
    proc = run_cli("bench", "--quick", "--peers", "none", "--shapes", "lesson", "--repeat",
                   "2", "--min-time", "0.01", "--json", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "lesson" in proc.stderr                       # the progress line
    out = proc.stdout
    for word in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "SIMD", "BLAS", "GEMM rate",
                 "fastrnn.rnn_forward", "fastrnn.LSTM.forward", "reference.lstm_forward",
                 "Summary", "%peak@0.9x"):
        assert word in out, word
    data = json.loads(path.read_text())
    assert data["kind"] == "suite" and data["status"] == 0 and data["mismatches"] == []
    env = data["environment"]
    for key in ("date", "cpu", "simd_level", "blas", "numpy", "scipy", "torch",
                "onnxruntime", "threads"):
        assert key in env
    assert env["torch"] is None and env["onnxruntime"] is None and env["threads"] == 1
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "FASTRNN_SIMD"):
        assert env["env"][var] == os.environ.get(var, "unset")
    assert any(lib["internal_api"] == "openblas" and lib["num_threads"] == 1
               and "architecture" in lib for lib in env["blas"])
    assert set(data["gemm"]) == {"float64", "float32"}
    assert all(v["gflops"] > 0 for v in data["gemm"].values())
    cases = {(r["shape"], r["model"], r["dtype"]) for r in data["results"]}
    assert cases == {("lesson", m, d) for m in _bench.MODELS for d in ("float64", "float32")}
    assert "gru" in _bench.MODELS and "fastrnn.GRU.forward" in out
    for res in data["results"]:
        assert res["dims"] == {"n_x": 3, "n_a": 5, "n_y": 2, "m": 10, "T_x": 4}
        assert res["flops"] == _bench.flops(res["model"], _bench.SHAPES["lesson"])
        rows = {r["role"]: r for r in res["impls"]}
        assert set(rows) == {"fastrnn", "model", "reference"}
        for r in rows.values():
            assert r["timed"] and not r["mismatch"]
            assert 0 < r["min_s"] <= r["median_s"] <= r["max_s"]
            assert r["spread"] == pytest.approx((r["max_s"] - r["min_s"]) / r["median_s"])
            # every round times fastrnn; the reference joins the rounds its time budget
            # allows, at least one (on a busy machine, only one)
            assert r["samples"] == len(r["times_s"]) >= (1 if r["role"] == "reference" else 2)
            assert r["gflops"] > 0 and 0 < r["frac_gemm"]
            assert r["ratio_vs_torch"] is None and r["max_abs_err_vs_torch"] is None
            assert r["ratio_vs_ort"] is None
            assert r["speedup_vs_reference"] > 0
        for role in ("fastrnn", "model"):
            ref = rows[role]["ratios"]["reference"]
            assert ref["min"] <= ref["median"] <= ref["max"]
            assert rows[role]["speedup_vs_reference"] == pytest.approx(1 / ref["median"])
            assert set(rows[role]["ratios"]) == {"reference"}
        assert rows["reference"]["speedup_vs_reference"] == pytest.approx(1.0)
        # fastrnn's faster call against one core's multiply-add peak (one thread); no peer
        peak = data["gemm"][res["dtype"]]["madd_peak_gflops"]
        best = max(rows["fastrnn"]["gflops"], rows["model"]["gflops"])
        assert res["frac_peak"] == pytest.approx(best / peak, rel=1e-12)
        assert res["peer_frac_peak"] is None and res["frac_peak_at_target"] is None
        tol = _selfcheck.TOLERANCES[res["dtype"]]["atol"] * 10
        assert rows["fastrnn"]["max_abs_err_vs_reference"] <= tol
        assert rows["model"]["max_abs_err_vs_reference"] <= tol
    assert data["settings"]["shapes"] == ["lesson"] and data["memory"] == []


def test_bench_no_reference_and_one_dtype(capsys):
    status = _bench.main(["--shapes", "stream", "--models", "lstm", "--dtype", "float32",
                          "--peers", "none", "--no-reference", "--repeat", "2", "--min-time",
                          "0.005", "--quick"])
    assert status == 0
    out = capsys.readouterr().out
    assert "fastrnn.lstm_cell_forward" in out and "fastrnn.LSTM.step" in out
    assert "reference.lstm_cell_forward" not in out


def test_bench_plot_without_matplotlib_is_a_clear_error(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # import matplotlib fails
    status = _bench.main(["--quick", "--shapes", "lesson", "--peers", "none",
                          "--plot", str(tmp_path / "p.png")])
    assert status == 2
    assert "matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()


def test_flops_formula():
    # 2*G*n_a*(n_a+n_x)*m*T_x + 2*n_y*n_a*m*T_x
    assert _bench.flops("rnn", (3, 5, 2, 10, 4)) == 2 * 5 * 8 * 40 + 2 * 2 * 5 * 40
    assert _bench.flops("lstm", (3, 5, 2, 10, 4)) == 2 * 4 * 5 * 8 * 40 + 2 * 2 * 5 * 40


def test_measure_takes_enough_samples():
    calls = []
    timing = _bench.measure(lambda: calls.append(1), repeat=4, min_time=0.0)
    assert len(timing.times) >= 4 and timing.number >= 1
    assert len(calls) >= 4 * timing.number
    assert timing.min <= timing.median
    slow = _bench.measure(lambda: sum(range(20000)), repeat=50, min_time=0.0, budget=0.0)
    assert len(slow.times) == 1          # a budget caps the samples, at least one


def test_peak_memory_counts_the_outputs():
    m = _bench.peak_memory("lstm", (16, 32, 8, 16, 20), np.float64)
    assert m["outputs"] == 8 * (32 * 16 * 20 * 2 + 8 * 16 * 20)
    assert m["gate_buffer"] == 8 * 4 * 32 * 16 * 20
    assert m["peak"] >= m["outputs"]
    # outputs of a MiB and more come from fastrnn's pool, packed weights from mapped memory:
    # the call runs in a fresh process, where neither is there before it (a warm process
    # reuses them, and tracemalloc saw 0 bytes)
    for kind_name, which in (("lstm", "model"), ("gru", "fastrnn")):
        m = _bench.peak_memory(kind_name, (64, 256, 32, 32, 40), np.float32, 0, which)
        assert m["outputs"] > 1 << 20
        assert m["peak"] >= m["outputs"], m


# ------------------------------------------------------------------ PyTorch conversion

def _torch_like_lstm_step(w, xt, h, c):
    """PyTorch's LSTM cell equations (gates i, f, g, o) in numpy, on torch_weights()."""
    z = w["weight_ih"] @ xt + w["bias_ih"][:, None] + w["weight_hh"] @ h + w["bias_hh"][:, None]
    i, f, g, o = np.split(z, 4)
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    c1 = sig(f) * c + sig(i) * np.tanh(g)
    h1 = sig(o) * np.tanh(c1)
    return h1, c1


def _softmax_out(w, h):
    return reference.softmax(w["weight_out"] @ h + w["bias_out"][:, None])


def test_torch_weights_lstm_gate_order_without_torch():
    rng = np.random.default_rng(0)
    p = _bench.lstm_params(rng, 3, 5, 2)
    xt, a, c = rng.standard_normal((3, 4)), rng.standard_normal((5, 4)), \
        rng.standard_normal((5, 4))
    w = _bench.torch_weights("lstm", p)
    assert w["weight_ih"].shape == (20, 3) and w["weight_hh"].shape == (20, 5)
    assert not w["bias_hh"].any()
    h1, c1 = _torch_like_lstm_step(w, xt, a, c)
    a_ref, c_ref, y_ref, _ = reference.lstm_cell_forward(xt, a, c, p)
    np.testing.assert_allclose(h1, a_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c1, c_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(_softmax_out(w, h1), y_ref, rtol=1e-12, atol=1e-14)


def test_torch_weights_rnn_without_torch():
    rng = np.random.default_rng(1)
    p = _bench.rnn_params(rng, 3, 5, 2)
    xt, a = rng.standard_normal((3, 4)), rng.standard_normal((5, 4))
    w = _bench.torch_weights("rnn", p)
    h1 = np.tanh(w["weight_ih"] @ xt + w["bias_ih"][:, None] + w["weight_hh"] @ a
                 + w["bias_hh"][:, None])
    a_ref, y_ref, _ = reference.rnn_cell_forward(xt, a, p)
    np.testing.assert_allclose(h1, a_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(_softmax_out(w, h1), y_ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("model", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("cell", [False, True], ids=["sequence", "cell"])
def test_torch_peer_matches_the_reference(model, dtype, cell):
    torch = pytest.importorskip("torch", reason="PyTorch is an optional peer")
    case = _bench.make_case(model, (7, 6, 4, 3, 5), _bench.DTYPES[dtype], seed=2)
    impl = _bench.torch_impl(model, case, cell=cell)
    with torch.inference_mode():
        got = impl.outputs(impl.call())
    want = _bench.reference_outputs(model, case, cell=cell)
    assert set(got) <= set(want) and {"a", "y"} <= set(got)
    if model == "lstm":
        assert ("c" if cell else "c_T") in got
    tol = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-4, atol=1e-5)}
    for key in got:
        assert got[key].shape == want[key].shape, key
        np.testing.assert_allclose(got[key], want[key], err_msg=key, **tol[dtype])
    assert _bench.max_abs_diff(got, want) < tol[dtype]["atol"] * 10


def test_bench_with_torch_reports_the_ratio(capsys):
    pytest.importorskip("torch", reason="PyTorch is an optional peer")
    status = _bench.main(["--quick", "--shapes", "lesson", "--models", "lstm", "--dtype",
                          "float64", "--repeat", "2", "--min-time", "0.005", "--peers",
                          "torch"])
    assert status == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "torch nn.LSTM+Linear" in line)
    assert float(row.split()[-1]) < 1e-10       # PyTorch's outputs vs the drop-in's
    summary = next(line for line in out.splitlines() if line.startswith("lesson    lstm"))
    assert "fn/torch" in out and "(" in summary


def test_bench_plot_writes_a_png_when_matplotlib_is_there(tmp_path, capsys):
    try:
        import matplotlib  # noqa: F401
        have_matplotlib = True
    except ImportError:
        have_matplotlib = False
    path = tmp_path / "speedups.png"
    status = _bench.main(["--quick", "--shapes", "lesson", "--models", "rnn", "--peers",
                          "none", "--repeat", "2", "--min-time", "0.005", "--plot", str(path)])
    if have_matplotlib:
        assert status == 0
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert status == 2 and "matplotlib" in capsys.readouterr().err


def test_bench_with_threads_reports_the_parallel_ceiling(tmp_path):
    """With --threads above 1 the report measures the same GEMM on one thread too, and says
    what threads can gain on this machine at best (the ratio of the two rates)."""
    path = tmp_path / "bench.json"
    proc = run_cli("bench", "--quick", "--peers", "none", "--shapes", "lesson", "--models",
                   "rnn", "--dtype", "float32", "--threads", "2", "--repeat", "2",
                   "--min-time", "0.01", "--json", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "parallel ceiling (this rate / the same GEMM on one thread): float32 " in proc.stdout
    gemm = json.loads(path.read_text())["gemm"]["float32"]
    assert gemm["gflops"] > 0 and gemm["one_thread_gflops"] > 0
