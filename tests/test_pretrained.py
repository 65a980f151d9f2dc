"""The registry of shipped models: names, paths and the one-line listing."""
import os

import pytest

from scratchnet import pretrained
from scratchnet.errors import ScratchnetError
from scratchnet.models import Model, load_model, make_config
from scratchnet.separation import load_model_separator


def test_every_shipped_model_loads_and_has_a_card():
    for name, entry in pretrained.SHIPPED.items():
        path = pretrained.path_of(name)
        assert os.path.isfile(path), name
        assert os.path.isfile(os.path.join(pretrained.HERE, entry["card"])), name
        assert pretrained.name_of(path) == name
        assert load_model(path).n_params() > 0
    assert pretrained.DEFAULT in pretrained.SHIPPED
    assert pretrained.path_of(None) == pretrained.path_of(pretrained.DEFAULT)


def test_paths_pass_through_and_unknown_names_are_refused(tmp_path):
    own = str(tmp_path / "mine.npz")
    assert pretrained.path_of(own) == own
    assert pretrained.name_of(own) is None
    with pytest.raises(ScratchnetError, match="unknown model 'drnn9'.*drnn2"):
        pretrained.path_of("drnn9")


def test_describe_gives_one_line_per_model():
    lines = pretrained.describe()
    assert len(lines) == len(pretrained.SHIPPED)
    assert any("(default)" in line for line in lines)


def test_a_separator_is_labelled_by_the_model_asked_for(tmp_path):
    """Every separator is labelled by the model that ran: the default (``--method drnn``
    alone) by its shipped name, a model of one's own by its file, so titles, pages and score
    files say which model made them."""
    assert load_model_separator().name == pretrained.DEFAULT
    assert load_model_separator(pretrained.DEFAULT).name == pretrained.DEFAULT
    assert load_model_separator("drnn2").name == "drnn2"
    own = str(tmp_path / "mine.npz")
    Model(make_config(arch="drnn-2", hidden=8, seed=0)).save(own)
    assert load_model_separator(own).name == "mine.npz"
