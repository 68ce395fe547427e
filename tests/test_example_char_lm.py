"""examples/char_lm.py runs end to end (a few iterations), saves, reloads and compares."""
import os
import subprocess
import sys

import numpy as np

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "examples", "char_lm.py")


def run(*args):
    return subprocess.run([sys.executable, EXAMPLE, *args], capture_output=True, text=True,
                          timeout=300, cwd=os.path.dirname(EXAMPLE))


def test_char_lm_trains_samples_saves_and_compares(tmp_path):
    path = str(tmp_path / "model.npz")
    proc = run("--model", "rnn", "--hidden", "16", "--iters", "4", "--batch", "2",
               "--seq-len", "8", "--sample-every", "2", "--sample-len", "10", "--save", path,
               "--compare", "--compare-iters", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "4/4" in out and "chars/s" in out
    assert "--- sample after 2 iterations ---" in out and "--- final sample ---" in out
    assert "(reloaded: identical)" in out
    assert "faster per character" in out
    with np.load(path) as f:
        assert f["Wax"].shape == (16, len(f["chars"]))
    # continue from the saved weights
    proc = run("--load", path, "--iters", "2", "--batch", "2", "--seq-len", "8",
               "--sample-every", "0", "--sample-len", "5")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "model rnn, n_a = 16" in proc.stdout


def test_char_lm_lstm_runs():
    proc = run("--model", "lstm", "--hidden", "8", "--iters", "2", "--batch", "3",
               "--seq-len", "5", "--sample-every", "0", "--sample-len", "5", "--dtype",
               "float64")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "model lstm, n_a = 8, float64" in proc.stdout
