"""The benchmark's pieces: the ONNX Runtime peer, paired timing and ratios, the floor, the
sweep, the table of model kinds.  No test here asserts a time or a speed: only shapes,
orders of events and outputs."""
import dataclasses
import json
import math

import numpy as np
import pytest

from fastrnn import _bench, reference
from fastrnn._bench import kinds, peer_ort, sweep, timing
from fastrnn._bench.suite import check_and_time
from _util import at_simd


def _sig(v):
    return 1 / (1 + np.exp(-v))


# ------------------------------------------------------------------ ONNX weights

def _onnx_lstm_step(w, xt, h, c):
    """The ONNX LSTM operator's equations (gates i, o, f, c; B = [Wb, Rb]) in numpy."""
    n_a = w["R"].shape[2]
    z = w["W"][0] @ xt + w["R"][0] @ h + (w["B"][0, :4 * n_a] + w["B"][0, 4 * n_a:])[:, None]
    i, o, f, g = np.split(z, 4)
    c1 = _sig(f) * c + _sig(i) * np.tanh(g)
    return _sig(o) * np.tanh(c1), c1


def _onnx_out(w, h):
    return reference.softmax(w["Wy"] @ h + w["by"][:, None])


def test_onnx_weights_lstm_gate_order_without_onnx():
    rng = np.random.default_rng(0)
    p = _bench.lstm_params(rng, 3, 5, 2)
    xt, a, c = (rng.standard_normal((n, 4)) for n in (3, 5, 5))
    w = peer_ort.onnx_weights_lstm(p)
    assert w["W"].shape == (1, 20, 3) and w["R"].shape == (1, 20, 5)
    assert w["B"].shape == (1, 40) and not w["B"][0, 20:].any()
    h1, c1 = _onnx_lstm_step(w, xt, a, c)
    a_ref, c_ref, y_ref, _ = reference.lstm_cell_forward(xt, a, c, p)
    np.testing.assert_allclose(h1, a_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c1, c_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(_onnx_out(w, h1), y_ref, rtol=1e-12, atol=1e-14)


def test_onnx_weights_rnn_without_onnx():
    rng = np.random.default_rng(1)
    p = _bench.rnn_params(rng, 3, 5, 2)
    xt, a = rng.standard_normal((3, 4)), rng.standard_normal((5, 4))
    w = peer_ort.onnx_weights_rnn(p)
    n_a = 5
    h1 = np.tanh(w["W"][0] @ xt + w["R"][0] @ a
                 + (w["B"][0, :n_a] + w["B"][0, n_a:])[:, None])
    a_ref, y_ref, _ = reference.rnn_cell_forward(xt, a, p)
    np.testing.assert_allclose(h1, a_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(_onnx_out(w, h1), y_ref, rtol=1e-12, atol=1e-14)


def test_onnx_lstm_mutant_gate_order_fails(monkeypatch):
    """Two gates swapped in the conversion: the numpy ONNX step no longer matches."""
    rng = np.random.default_rng(2)
    p = _bench.lstm_params(rng, 3, 5, 2)
    xt, a, c = (rng.standard_normal((n, 4)) for n in (3, 5, 5))
    monkeypatch.setattr(peer_ort, "ONNX_GATES", ("i", "f", "o", "c"))
    h1, _ = _onnx_lstm_step(peer_ort.onnx_weights_lstm(p), xt, a, c)
    a_ref = reference.lstm_cell_forward(xt, a, c, p)[0]
    assert np.max(np.abs(h1 - a_ref)) > 1e-3


# ------------------------------------------------------------------ GRU weights

def _gru_step(W, R, bx, bh, xt, h, order):
    """A GRU step in PyTorch's / ONNX's (linear_before_reset=1) formulation, from stacked
    blocks whose gates come in ``order`` (PyTorch "rzn", ONNX "zrn")."""
    gx = dict(zip(order, np.split(W @ xt + bx[:, None], 3)))
    gh = dict(zip(order, np.split(R @ h + bh[:, None], 3)))
    r, z = _sig(gx["r"] + gh["r"]), _sig(gx["z"] + gh["z"])
    n = np.tanh(gx["n"] + r * gh["n"])
    return (1 - z) * n + z * h


def _gru_case(seed):
    rng = np.random.default_rng(seed)
    p = _bench.gru_params(rng, 3, 5, 2)
    return p, rng.standard_normal((3, 4)), rng.standard_normal((5, 4))


def test_torch_weights_gru_gate_order_without_torch():
    from fastrnn._bench import peer_torch
    p, xt, a = _gru_case(3)
    w = peer_torch.torch_weights_gru(p)
    assert w["weight_ih"].shape == (15, 3) and w["weight_hh"].shape == (15, 5)
    assert w["bias_ih"].shape == w["bias_hh"].shape == (15,)
    h1 = _gru_step(w["weight_ih"], w["weight_hh"], w["bias_ih"], w["bias_hh"], xt, a, "rzn")
    a_ref, y_ref, _ = reference.gru_cell_forward(xt, a, p)
    np.testing.assert_allclose(h1, a_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        reference.softmax(w["weight_out"] @ h1 + w["bias_out"][:, None]), y_ref,
        rtol=1e-12, atol=1e-14)


def test_onnx_weights_gru_gate_order_without_onnx():
    p, xt, a = _gru_case(4)
    w = peer_ort.onnx_weights_gru(p)
    assert w["W"].shape == (1, 15, 3) and w["R"].shape == (1, 15, 5)
    assert w["B"].shape == (1, 30)
    h1 = _gru_step(w["W"][0], w["R"][0], w["B"][0, :15], w["B"][0, 15:], xt, a, "zrn")
    a_ref, y_ref, _ = reference.gru_cell_forward(xt, a, p)
    np.testing.assert_allclose(h1, a_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(_onnx_out(w, h1), y_ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("gates", [("r", "z", "n"), ("z", "n", "r")])
def test_onnx_gru_mutant_gate_order_fails(monkeypatch, gates):
    """r and z swapped (PyTorch's order given to ONNX), or the candidate moved."""
    p, xt, a = _gru_case(5)
    monkeypatch.setattr(peer_ort, "ONNX_GRU_GATES", gates)
    w = peer_ort.onnx_weights_gru(p)
    h1 = _gru_step(w["W"][0], w["R"][0], w["B"][0, :15], w["B"][0, 15:], xt, a, "zrn")
    assert np.max(np.abs(h1 - reference.gru_cell_forward(xt, a, p)[0])) > 1e-3


def test_torch_gru_mutant_gate_order_fails(monkeypatch):
    from fastrnn._bench import peer_torch
    p, xt, a = _gru_case(6)
    monkeypatch.setattr(peer_torch, "TORCH_GRU_GATES", ("z", "r", "n"))
    w = peer_torch.torch_weights_gru(p)
    h1 = _gru_step(w["weight_ih"], w["weight_hh"], w["bias_ih"], w["bias_hh"], xt, a, "rzn")
    assert np.max(np.abs(h1 - reference.gru_cell_forward(xt, a, p)[0])) > 1e-3


# ------------------------------------------------------------------ ONNX Runtime

def _ort():
    pytest.importorskip("onnx", reason="ONNX Runtime is an optional peer")
    pytest.importorskip("onnxruntime", reason="ONNX Runtime is an optional peer")


@pytest.mark.parametrize("model", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("cell", [False, True], ids=["sequence", "cell"])
def test_ort_peer_matches_the_reference(model, cell):
    _ort()
    case = _bench.make_case(model, (7, 6, 4, 3, 5), np.float32, seed=2)
    impl = _bench.ort_impl(model, case, cell=cell)
    got = impl.outputs(impl.call())
    want = _bench.reference_outputs(model, case, cell=cell)
    assert {"a", "y"} <= set(got) <= set(want)
    if model == "lstm":
        assert ("c" if cell else "c_T") in got
    for key in got:
        assert got[key].shape == want[key].shape, key
        np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-5, err_msg=key)


def test_ort_peer_is_float32_only():
    _ort()
    p = _bench.rnn_params(np.random.default_rng(0), 3, 4, 2)
    with pytest.raises(ValueError, match="float32"):
        peer_ort.build_graph("rnn", p, np.float64)
    case64 = _bench.make_case("rnn", (3, 4, 2, 2, 3), np.float64)
    assert [i.role for i in _bench.peer_impls("rnn", case64, peers=("ort",))] == []


def test_a_wrong_peer_is_a_mismatch_not_timed(monkeypatch):
    """ONNX gates in the wrong order: the row says MISMATCH, is not timed, and is the only
    one flagged."""
    _ort()
    monkeypatch.setattr(peer_ort, "ONNX_GATES", ("i", "f", "o", "c"))
    case = _bench.make_case("lstm", (7, 6, 4, 3, 5), np.float32, seed=2)
    impls = (_bench.fastrnn_impls("lstm", case)[:2]
             + _bench.peer_impls("lstm", case, peers=("ort",)))
    rows = check_and_time(impls, "float32", _bench.reference_outputs("lstm", case),
                          repeat=2, min_time=0.0, reference_budget=0.0)
    by = {r["role"]: r for r in rows}
    assert by["ort"]["mismatch"] and not by["ort"]["timed"]
    assert by["ort"]["max_abs_err_vs_reference"] > 1e-3
    for role in ("fastrnn", "model"):
        assert by[role]["timed"] and not by[role]["mismatch"]
        assert "ort" not in by[role]["ratios"] and by[role]["ratio_vs_ort"] is None


@pytest.mark.parametrize("peer", ["torch", "ort"])
@pytest.mark.parametrize("cell", [False, True], ids=["sequence", "cell"])
def test_a_gru_peer_with_swapped_gates_is_a_mismatch(monkeypatch, peer, cell):
    """The GRU peers run for real with r and z swapped in their weight conversion: MISMATCH,
    not timed; fastrnn's rows are timed."""
    from fastrnn._bench import peer_torch
    if peer == "ort":
        _ort()
        monkeypatch.setattr(peer_ort, "ONNX_GRU_GATES", ("r", "z", "n"))
    else:
        pytest.importorskip("torch", reason="PyTorch is an optional peer")
        monkeypatch.setattr(peer_torch, "TORCH_GRU_GATES", ("z", "r", "n"))
    case = _bench.make_case("gru", (7, 6, 4, 3, 5), np.float32, seed=2)
    impls = (_bench.fastrnn_impls("gru", case, cell=cell)[:2]
             + _bench.peer_impls("gru", case, cell=cell, peers=(peer,)))
    rows = check_and_time(impls, "float32", _bench.reference_outputs("gru", case, cell=cell),
                          repeat=1, min_time=0.0, reference_budget=0.0)
    by = {r["role"]: r for r in rows}
    assert by[peer]["mismatch"] and not by[peer]["timed"]
    assert by[peer]["max_abs_err_vs_reference"] > 1e-3
    assert all(by[role]["timed"] and not by[role]["mismatch"] for role in ("fastrnn", "model"))


def test_bench_exits_1_on_a_mismatch(monkeypatch, capsys):
    _ort()
    monkeypatch.setattr(peer_ort, "ONNX_GATES", ("o", "i", "f", "c"))
    status = _bench.main(["--quick", "--shapes", "lesson", "--models", "lstm", "--dtype",
                          "float32", "--peers", "ort", "--repeat", "1", "--min-time", "0",
                          "--reference-budget", "0"])
    out = capsys.readouterr().out
    assert status == 1
    assert "MISMATCH" in out
    row = next(line for line in out.splitlines() if "onnxruntime LSTM" in line)
    assert "not timed" in row and row.rstrip().endswith("MISMATCH")


# ------------------------------------------------------------------ timing

def test_measure_interleaved_takes_one_sample_of_each_per_round():
    log = []
    fns = {name: (lambda name=name: log.append(name), timing.contextlib.nullcontext)
           for name in "abc"}
    result = timing.measure_interleaved(fns, rounds=4, sample_target=0.0)
    assert all(t.number == 1 and len(t.times) == 4 for t in result.values())
    assert log[:3] == ["a", "b", "c"]                  # calibration, one call each
    rounds = [log[3 + 3 * r: 6 + 3 * r] for r in range(4)]
    assert rounds == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]
    assert len(log) == 15


def test_ratio_stats_paired_and_unpaired():
    a = timing.Timing([2.0, 3.0, 4.0], 1)
    b = timing.Timing([1.0, 2.0, 1.0], 1)
    paired = timing.ratio_stats(a, b)
    assert paired == {"median": 2.0, "min": 1.5, "max": 4.0}
    unpaired = timing.ratio_stats(a, b, paired=False)
    assert unpaired == {"median": 3.0, "min": 1.0, "max": 4.0}
    c = timing.Timing([1.0, 0.5], 1)     # a budget-limited callable: its first rounds
    assert timing.ratio_stats(a, c) == {"median": 4.0, "min": 2.0, "max": 6.0}


def test_read_floor_is_a_positive_time():
    for dtype in (np.float32, np.float64):
        f = timing.read_floor(dtype, 4 * 16, 16, repeat=2, sample_target=1e-4)
        assert 0 < f < 1 and math.isfinite(f)


def test_multiply_add_loop_counts_its_work_at_every_level():
    """madd_rounds does n rounds of 12 chains of the level's vector width (64 / 32 / 16
    bytes at AVX-512 / AVX2 / SSE2); madd_peak turns its time into a positive rate."""
    from fastrnn._kernels import _core

    width = {"avx512": 64, "avx2": 32, "sse2": 16}
    for level in _core.simd_available():
        with at_simd(level):
            for dtype, item in ((np.float32, 4), (np.float64, 8)):
                assert _core.madd_rounds(dtype, 7) == 7 * 12 * width[level] // item
                assert _core.madd_rounds(dtype, 0) == 0
                rate = timing.madd_peak(dtype, repeat=2, sample_target=1e-4)
                assert 0 < rate < 1e6 and math.isfinite(rate)
    for bad in (np.int32, None):   # (np.dtype(None) would be float64)
        with pytest.raises(TypeError, match="float32 or float64"):
            _core.madd_rounds(bad, 1)
    with pytest.raises(ValueError, match="n >= 0"):
        _core.madd_rounds(np.float32, -1)
    with pytest.raises(ValueError, match="repeat >= 1"):
        timing.madd_peak(np.float32, repeat=0)


# ------------------------------------------------------------------ kinds

def test_every_kind_plugs_in_its_calls_and_conversions():
    import fastrnn

    for name, k in kinds.KINDS.items():
        assert k.name == name and kinds.kind(name) is k and kinds.kind(k) is k
        for fn in (name + "_forward", name + "_cell_forward"):
            assert callable(getattr(fastrnn, fn)) and callable(getattr(reference, fn))
        assert hasattr(getattr(fastrnn, k.model), "step")
        p = k.params(np.random.default_rng(0), 3, 4, 2)
        w = k.torch_weights(p)
        assert w["weight_hh"].shape == (k.gates * 4, 4) and w["weight_ih"].shape[1] == 3
        o = k.onnx_weights(p)
        assert o["W"].shape == (1, k.gates * 4, 3) and o["B"].shape == (1, 2 * k.gates * 4)
    with pytest.raises(ValueError, match="unknown model kind"):
        kinds.kind("transformer")


def _case(m, *rows):
    impls = [{"role": role, "median_s": sec, "timed": timed, "gflops": 6 / sec,
              "ratios": {}, "frac_gemm": None} for role, sec, timed in rows]
    return {"shape": "mid", "model": "lstm", "dtype": "float32", "flops": 6e9,
            "dims": {"m": m}, "impls": impls}


@pytest.mark.parametrize("threads, m, cores", [(1, 4, 1), (2, 4, 2), (4, 3, 3), (2, 1, 1)])
def test_peak_fractions_price_the_fastest_timed_peer(threads, m, cores):
    """%peak is fastrnn's faster call against the multiply-add peak of the cores a batch of
    m can use; %peak@0.9x prices 0.9x the fastest timed peer (not the reference, not an
    untimed peer); the report prints both."""
    from fastrnn._bench import report, suite
    assert suite.PEER_TARGET == 0.9
    res = _case(m, ("fastrnn", 2.0, True), ("model", 1.5, True), ("reference", 0.5, True),
                ("torch", 1.6, True), ("ort", 1.2, True))
    suite.add_peak_fractions(res, 5.0, threads)          # 5 GFLOP/s a core
    assert res["frac_peak"] == pytest.approx(6 / 1.5 / (5 * cores), rel=1e-12)
    assert res["peer_frac_peak"] == pytest.approx(6 / 1.2 / (5 * cores), rel=1e-12)
    assert res["frac_peak_at_target"] == pytest.approx(6 / (0.9 * 1.2) / (5 * cores),
                                                       rel=1e-12)
    line = report.format_summary([res], ["torch", "ort"]).splitlines()[-1].split()
    assert line[-2:] == [f"{100 * res['frac_peak']:.1f}",
                         f"{100 * res['frac_peak_at_target']:.1f}"]
    res = _case(m, ("model", 1.5, True), ("torch", 1.6, True), ("ort", 0.1, False))
    suite.add_peak_fractions(res, 5.0, threads)
    assert res["peer_frac_peak"] == pytest.approx(6 / 1.6 / (5 * cores), rel=1e-12)
    suite.add_peak_fractions(res, None, threads)          # no peak measured
    assert res["frac_peak"] is None and res["frac_peak_at_target"] is None
    res = _case(m, ("model", 1.5, True), ("reference", 0.5, True))
    suite.add_peak_fractions(res, 5.0, threads)           # no peer timed
    assert res["frac_peak"] is not None and res["frac_peak_at_target"] is None
    assert report.format_summary([res], ["torch", "ort"]).splitlines()[-1].split()[-1] == "-"


# ------------------------------------------------------------------ sweep

def test_sweep_dims_and_T():
    assert sweep.sweep_dims(1, 3, 10) == (1, 1, 1, 3, 10)
    assert sweep.sweep_dims(192, 4, 50) == (96, 192, 96, 4, 50)
    T = sweep.choose_T("rnn", 8, 2, np.float32)
    lo, hi = sweep.T_RANGE
    assert lo <= T <= hi
    assert len(str(T).rstrip("0")) <= 2                # two significant digits


def test_sweep_from_the_command_writes_cells_grids_and_floors(tmp_path, capsys):
    path = tmp_path / "sweep.json"
    status = _bench.main(["--sweep", "--quick", "--n-a", "8,12", "--batch", "1,9",
                          "--models", "lstm", "--peers", "none", "--repeat", "2",
                          "--time-cap", "0.5", "--json", str(path)])
    assert status == 0
    out = capsys.readouterr().out
    assert "packed model time per step / floor" in out
    assert "% of the multiply-add peak" in out and "multiply-add peak at fastrnn" in out
    data = json.loads(path.read_text())
    assert data["kind"] == "sweep" and data["status"] == 0
    assert data["settings"]["n_a"] == [8, 12] and data["settings"]["m"] == [1, 9]
    cells = {(c["n_a"], c["m"]): c for c in data["sweep"]}
    assert set(cells) == {(8, 1), (8, 9), (12, 1), (12, 9)}
    for (n_a, m), c in cells.items():
        assert c["dims"] == {"n_x": n_a // 2, "n_a": n_a, "n_y": n_a // 2, "m": m,
                             "T_x": c["T_x"]}
        assert c["model"] == "lstm" and c["dtype"] == "float32"
        assert {r["role"] for r in c["impls"]} == {"fastrnn", "model"}
        assert all(r["timed"] and r["max_abs_err_vs_reference"] < 1e-3 for r in c["impls"])
        model = next(r for r in c["impls"] if r["role"] == "model")
        assert c["peer_frac_peak"] is None and c["frac_peak_at_target"] is None  # no peer
        assert c["frac_peak"] == pytest.approx(
            c["flops"] / model["median_s"] / 1e9 / data["gemm"]["float32"]["madd_peak_gflops"])
        if m <= sweep.FLOOR_MAX_M:
            assert c["floor_s"] > 0
            assert c["step_over_floor"] == pytest.approx(c["step_s"] / c["floor_s"])
        else:
            assert c["floor_s"] is None and c["step_over_floor"] is None


def test_sweep_grid_text():
    cells = [{"model": "rnn", "dtype": "float32", "n_a": n, "m": m, "step_over_floor": None,
              "impls": [{"role": "model", "ratios": {"torch": {"median": n / m, "min": 0,
                                                               "max": 9}}}]}
             for n in (2, 4) for m in (1, 2)]
    text = sweep.format_grids(cells, ["torch"])
    lines = text.splitlines()
    title = next(k for k, line in enumerate(lines) if "packed model time / torch" in line)
    assert lines[title + 1].split() == ["n_a", "/", "m", "1", "2"]
    assert lines[title + 2].split() == ["2", "2.00", "1.00"]
    assert lines[title + 3].split() == ["4", "4.00", "2.00"]
    assert "would need" not in text                      # no peer fraction: no grid


def test_sweep_grid_of_what_0_9x_the_fastest_peer_would_need():
    """Each cell prices 0.9x its fastest timed peer against the cores a batch of m can
    use (the sweep's own %peak stays the packed model's)."""
    from fastrnn._bench import suite
    cells = []
    for n_a in (8, 16):
        for m in (1, 3):
            res = _case(m, ("model", 1.0, True), ("torch", 0.5 * n_a / 8, True),
                        ("ort", 0.25, False))
            res.update(model="lstm", dtype="float32", n_a=n_a, m=m, step_over_floor=None)
            cells.append(suite.add_peer_fractions(res, 5.0, threads=2))
    text = sweep.format_grids(cells, [])
    lines = text.splitlines()
    title = next(k for k, line in enumerate(lines) if "would need" in line)
    assert "0.9x the fastest peer" in lines[title]
    # 6 GFLOP in 0.9 * 0.5 s (n_a = 8) or 0.9 * 1 s (16), on 1 core (m = 1) or 2 (m = 3)
    assert lines[title + 2].split() == ["8", f"{100 * 6 / 0.45 / 5:.0f}",
                                        f"{100 * 6 / 0.45 / 10:.0f}"]
    assert lines[title + 3].split() == ["16", f"{100 * 6 / 0.9 / 5:.0f}",
                                        f"{100 * 6 / 0.9 / 10:.0f}"]


# ------------------------------------------------------------------ plots

def _fake_row(role, speedups):
    ratios = {b: {"median": 1 / v, "min": 0.8 / v, "max": 1.25 / v} for b, v in speedups.items()}
    return {"role": role, "timed": True, "ratios": ratios}


def test_plot_suite_and_sweep_write_images(tmp_path):
    pytest.importorskip("matplotlib", reason="plots are optional (fastrnn[plot])")
    from fastrnn._bench import plot

    results = [{"shape": s, "model": mo, "dtype": d,
                "impls": [_fake_row(role, {"reference": 30.0 * (k + 1), "torch": 0.7 + k,
                                           **({"ort": 1.5} if d == "float32" else {})})
                          for role in ("fastrnn", "model")]}
               for k, s in enumerate(("lesson", "big")) for mo in ("rnn", "lstm")
               for d in ("float64", "float32")]
    for suffix in ("png", "svg"):
        path = tmp_path / f"suite.{suffix}"
        plot.plot_suite(results, str(path))
        assert path.stat().st_size > 1000
    cells = [{"model": "lstm", "dtype": "float32", "n_a": n, "m": m,
              "step_over_floor": 2.0 if m <= 8 else None,
              "impls": [_fake_row(role, {"torch": n / m, "ort": m / n})
                        for role in ("fastrnn", "model")]}
             for n in (32, 64) for m in (1, 16)]
    path = tmp_path / "sweep.png"
    plot.plot_sweep(cells, str(path), ["torch", "ort"])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="nothing to plot"):
        plot.plot_suite([{"shape": "lesson", "model": "rnn", "dtype": "float64",
                          "impls": [{"role": "fastrnn", "timed": True, "ratios": {}}]}],
                        str(tmp_path / "empty.png"))


def test_a_budget_limits_a_callable_to_the_first_rounds():
    log = []
    fns = {"fast": (lambda: log.append("fast"), timing.contextlib.nullcontext),
           "slow": (lambda: log.append("slow"), timing.contextlib.nullcontext, 0.0)}
    result = timing.measure_interleaved(fns, rounds=3, sample_target=0.0)
    assert len(result["fast"].times) == 3 and len(result["slow"].times) == 1
    assert log == ["fast", "slow", "fast", "slow", "fast", "fast"]


# ------------------------------------------------------------------ workloads

def test_a_new_workload_plugs_in_as_one_entry(monkeypatch, capsys):
    """A workload timing the packed model's forward pass twice per call: the suite checks,
    times and reports it under its own name, next to the forward pass."""
    from fastrnn._bench import workloads

    def twice(model, case, cell, n_threads, peers):
        impls = [i for i in _bench.fastrnn_impls(model, case, cell=cell)
                 if i.role in ("model", "reference")]
        for impl in impls:
            impl.call = (lambda call: (lambda: (call(), call())[1]))(impl.call)
        return impls
    monkeypatch.setitem(workloads.WORKLOADS, "twice", workloads.Workload(
        "twice", "the forward pass twice", twice, _bench.reference_outputs,
        lambda model, shape: 2 * _bench.flops(model, shape)))
    status = _bench.main(["--quick", "--shapes", "lesson", "--models", "rnn", "--dtype",
                          "float32", "--peers", "none", "--workloads", "forward,twice",
                          "--repeat", "1", "--min-time", "0"])
    out = capsys.readouterr().out
    assert status == 0
    assert "lesson/twice rnn" in out and "lesson    rnn" in out


# ------------------------------------------------------------------ train workload

def test_train_workload_from_the_command(tmp_path, capsys):
    """--workloads train: backward, forward, loss_and_grads and the reference's backward,
    checked against the float64 reference; no cell shape, no kind without a backward."""
    path = tmp_path / "train.json"
    status = _bench.main(["--quick", "--shapes", "lesson,stream", "--workloads", "train",
                          "--peers", "none", "--repeat", "2", "--min-time", "0",
                          "--reference-budget", "0", "--json", str(path)])
    out = capsys.readouterr().out
    assert status == 0
    assert "Summary, train" in out and "bwd/fwd" in out and "Summary: median" not in out
    data = json.loads(path.read_text())
    assert {(r["shape"], r["model"], r["workload"]) for r in data["results"]} == {
        ("lesson", m, "train") for m in ("rnn", "lstm")}
    for res in data["results"]:
        by = {r["role"]: r for r in res["impls"]}
        assert set(by) == {"fastrnn", "forward", "model", "reference"}
        assert by["fastrnn"]["label"] == f"fastrnn.{res['model']}_backward"
        for r in by.values():
            assert r["timed"] and not r["mismatch"]
            # every row was checked against the float64 reference
            tol = 1e-9 if res["dtype"] == "float64" else 1e-5
            assert r["max_abs_err_vs_reference"] < tol
        assert set(by["fastrnn"]["ratios"]) == {"reference", "forward"}
        assert set(by["reference"]["ratios"]) == {"fastrnn"}
        assert by["model"]["ratios"] == {}                   # no peer: no ratio
        # the rows time unlike calls (backward, forward, both): no share of the peak
        assert res["frac_peak"] is None and res["frac_peak_at_target"] is None
    assert data["memory"] == []
    assert "%peak" not in out


@pytest.mark.parametrize("model", ["rnn", "lstm"])
def test_train_a_wrong_backward_is_a_mismatch(monkeypatch, model):
    """The drop-in backward with its bias gradient dropped: MISMATCH, not timed."""
    import fastrnn
    from fastrnn._bench import training

    real = getattr(fastrnn, model + "_backward")

    def dropped(da, caches):
        grads = real(da, caches)
        key = "dba" if model == "rnn" else "dbf"
        return {**grads, key: np.zeros_like(grads[key])}
    monkeypatch.setattr(fastrnn, model + "_backward", dropped)
    case = _bench.make_case(model, (7, 6, 4, 3, 5), np.float32, seed=2)
    rows = check_and_time(training.train_impls(model, case, False, 1, ()), "float32",
                          training.train_want(model, case), repeat=1, min_time=0.0,
                          reference_budget=0.0)
    by = {r["role"]: r for r in rows}
    assert by["fastrnn"]["mismatch"] and not by["fastrnn"]["timed"]
    assert not any(by[role]["mismatch"] for role in ("forward", "model", "reference"))


@pytest.mark.parametrize("model", ["rnn", "lstm"])
def test_train_torch_autograd_matches_and_a_mutant_does_not(monkeypatch, model):
    pytest.importorskip("torch", reason="PyTorch is an optional peer")
    from fastrnn._bench import peer_torch, training

    case = _bench.make_case(model, (7, 6, 4, 3, 5), np.float64, seed=2)
    want = training.train_want(model, case)
    torch_row = training.train_impls(model, case, False, 1, ("torch",))[-1]
    got = torch_row.outputs(torch_row.call())
    assert {"lg_loss", "lg_weight_ih", "lg_weight_hh", "lg_da0"} <= set(got)
    for key in got:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-9, atol=1e-11, err_msg=key)
    if model == "lstm":
        monkeypatch.setattr(peer_torch, "TORCH_GATES", ("f", "i", "c", "o"))
    else:   # the output layer's bias dropped
        real = peer_torch.torch_weights_rnn
        monkeypatch.setitem(kinds.KINDS, "rnn", dataclasses.replace(
            kinds.KINDS["rnn"], torch_weights=lambda p: {
                **real(p), "bias_out": 0 * real(p)["bias_out"]}))
    bad = training.train_impls(model, case, False, 1, ("torch",))[-1]
    assert _bench.max_abs_diff(bad.outputs(bad.call()), want) > 1e-3


# ------------------------------------------------------------------ compose workload

def test_compose_workload_from_the_command(tmp_path, capsys):
    path = tmp_path / "compose.json"
    status = _bench.main(["--quick", "--shapes", "lesson,charlm", "--workloads", "compose",
                          "--models", "gru", "--dtype", "float64", "--peers", "none",
                          "--repeat", "2", "--min-time", "0", "--json", str(path)])
    out = capsys.readouterr().out
    assert status == 0 and "Summary, compose" in out and "len/padded" in out
    data = json.loads(path.read_text())
    res, = data["results"]                               # charlm is not a compose shape
    assert (res["shape"], res["model"], res["workload"]) == ("lesson", "gru", "compose")
    by = {r["role"]: r for r in res["impls"]}
    assert set(by) == {"fastrnn", "layers", "bidir", "bidir2", "directions", "lengths"}
    for r in by.values():
        assert r["timed"] and not r["mismatch"] and r["max_abs_err_vs_reference"] < 1e-12
    assert set(by["fastrnn"]["ratios"]) == {"layers"}
    assert set(by["bidir2"]["ratios"]) == {"directions"}
    assert set(by["lengths"]["ratios"]) == {"bidir"}


def test_compose_directions_swapped_is_a_mismatch(monkeypatch):
    import fastrnn
    from fastrnn._bench import compose

    real = fastrnn.Bidirectional
    monkeypatch.setattr(fastrnn, "Bidirectional", lambda f, b: real(b, f))
    case = _bench.make_case("lstm", (3, 5, 2, 4, 6), np.float64, seed=1)
    rows = check_and_time(compose.compose_impls("lstm", case, False, 1, ()), "float64",
                          compose.compose_want("lstm", case), repeat=1, min_time=0.0,
                          reference_budget=0.0)
    by = {r["role"]: r for r in rows}
    assert all(by[role]["mismatch"] for role in ("bidir", "bidir2", "lengths"))
    assert not any(by[role]["mismatch"] for role in ("fastrnn", "layers", "directions"))
