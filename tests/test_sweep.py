import json

import pytest

from scratchnet import sweep
from scratchnet.errors import ScratchnetError


def _config(tmp_path):
    cfg = {
        "name": "tiny",
        "base": {"model": {"arch": "drnn-2", "hidden": 8}, "stages": [[10, 1]], "batch_size": 2,
                 "max_batches_per_epoch": 3, "valid_clips": 1, "workers": 1, "shift_step": 0},
        "grid": {"model.arch": ["dnn", "drnn-1"], "lr": [0.001]},
        "evaluate": {"split": "huang", "part": "test", "limit": 1},
    }
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(cfg))
    return str(path)


def test_expand_makes_every_combination(tmp_path):
    cfg = sweep.load_sweep(_config(tmp_path))
    cfg["grid"]["lr"] = [0.1, 0.01]
    points = sweep.expand(cfg)
    assert [p[0] for p in points] == ["arch-dnn__lr-0.1", "arch-dnn__lr-0.01",
                                      "arch-drnn-1__lr-0.1", "arch-drnn-1__lr-0.01"]
    assert points[0][2]["model"] == {"arch": "dnn", "hidden": 8} and points[0][2]["lr"] == 0.1


def test_sweep_runs_in_parallel_writes_csv_and_figure_and_resumes(fake_mir1k, tmp_path):
    cfg = sweep.load_sweep(_config(tmp_path))
    out = str(tmp_path / "out")
    csv_path, fig_path = sweep.run_sweep(cfg, fake_mir1k, out, jobs=2, log=lambda *_: None)
    lines = open(csv_path).read().strip().splitlines()
    assert len(lines) == 3 and "vocals_GNSDR" in lines[0]
    assert open(fig_path, "rb").read(4) == b"\x89PNG"
    messages = []
    sweep.run_sweep(cfg, fake_mir1k, out, jobs=2, log=messages.append)
    assert "0 to do" in messages[0]


def test_bad_sweep_config(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"grid": {"lr": []}}))
    with pytest.raises(ScratchnetError, match="grid option 'lr' needs a non-empty list"):
        sweep.load_sweep(str(bad))
    with pytest.raises(ScratchnetError, match="cannot read sweep config"):
        sweep.load_sweep(str(tmp_path / "missing.json"))
