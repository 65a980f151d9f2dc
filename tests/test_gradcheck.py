"""``python -m scratchnet.gradcheck``: PASS/FAIL column, printed threshold, --help, --only, exit status."""
import os
import subprocess
import sys

import numpy as np
import pytest

from scratchnet import gradcheck
from scratchnet.gradcheck.__main__ import main


def test_only_selects_groups_and_every_row_passes(capsys):
    assert main(["--only", "rnn,mask"]) == 0
    out = capsys.readouterr().out
    assert "PASS below 1e-06" in out
    rows = [ln for ln in out.splitlines() if ln.rstrip().endswith(("PASS", "FAIL"))]
    assert rows and all(ln.startswith(("rnn", "mask")) for ln in rows), out
    assert all(ln.rstrip().endswith("PASS") for ln in rows)
    assert "0 FAIL" in out


def test_a_planted_bug_fails_its_row_and_the_exit_status(monkeypatch, capsys):
    import scratchnet.nn.rnn as rnn

    def no_relu(dnext_h, cache):
        x, prev_h, Wx, Wh, next_h = cache
        dz = dnext_h  # BUG: the ReLU's mask is missing
        return dz @ Wx.T, dz @ Wh.T, x.T @ dz, prev_h.T @ dz, dz.sum(axis=0)
    monkeypatch.setattr(rnn, "rnn_step_backward", no_relu)
    assert main(["--only", "rnn"]) == 1
    out = capsys.readouterr().out
    fails = [ln for ln in out.splitlines() if ln.rstrip().endswith("FAIL")]
    assert fails and all(ln.startswith(("rnn step", "rnn BPTT (steps)")) for ln in fails), out
    assert "rnn BPTT (kernels)" in out and not any(ln.startswith("rnn BPTT (kernels)") for ln in fails)


def test_groups_do_not_change_each_others_rows():
    alone = gradcheck.gradient_table(only=["mask"])
    together = [r for r in gradcheck.gradient_table(only=["rnn", "mask"]) if r[0] == "mask"]
    assert alone == together


def test_the_gated_cells_have_rows():
    whats = {r[0] for r in gradcheck.gradient_table(only=["gru", "lstm"])}
    assert {"gru step", "gru BPTT", "gru BPTT (kernels)", "lstm step", "lstm BPTT", "lstm BPTT (kernels)"} <= whats


def test_format_table_marks_nan_as_fail():
    table = gradcheck.format_table([("x", "dx", float("nan")), ("y", "dy", 1e-9)], threshold=1e-6)
    assert table.splitlines()[2].endswith("FAIL") and table.splitlines()[3].endswith("PASS")


@pytest.mark.parametrize("argv,code,words", [
    (["--help"], 0, "--only GROUPS"),
    (["--only", "rnn,bogus"], 2, "choose among"),
    (["--threshold", "-1"], 2, "must be a positive number"),
])
def test_command_line(argv, code, words):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-m", "scratchnet.gradcheck", *argv], capture_output=True,
                       text=True, env=env, timeout=120)
    assert p.returncode == code, p.stderr
    assert words in p.stdout + p.stderr
    assert "Traceback" not in p.stderr


def test_unknown_group_in_python_names_the_choices():
    from scratchnet.errors import ScratchnetError
    with pytest.raises(ScratchnetError, match="choose among"):
        gradcheck.gradient_table(only=["rnnn"])
    assert np.isfinite([r[2] for r in gradcheck.gradient_table(only=["loss"])]).all()
