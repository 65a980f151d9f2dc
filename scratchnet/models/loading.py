"""Loading a saved network: one file, a single :class:`~scratchnet.models.model.Model` or an
:class:`~scratchnet.models.ensemble.Ensemble` of them, told apart by its config.

It sits above both (each saves itself; this reads either back), so that neither imports
the other's module to be loaded.
"""
import os

from .. import files
from ..errors import ScratchnetError
from .ensemble import Ensemble
from .model import model_from_arrays


def load_model(path, *, dtype=None):
    """Load a model saved by :meth:`~scratchnet.models.model.Model.save` (or an ensemble of them, saved by
    :meth:`scratchnet.models.ensemble.Ensemble.save`); a bad file or tensor is named in one line."""
    path = os.fspath(path)
    arrays, meta = files.load_npz(path, what="model")
    config = meta.get("config")
    if config is None:
        base = path[:-4] if path.endswith(".npz") else path
        if not os.path.isfile(base + ".json"):
            raise ScratchnetError(f"{path!r} has no config (expected {base + '.json'})")
        config = files.read_json(base + ".json", what="model config")
    if not isinstance(config, dict):
        raise ScratchnetError(f"{path!r} holds no model config")
    if config.get("arch") == "ensemble":
        return Ensemble.from_arrays(arrays, config, source=path, dtype=dtype)
    return model_from_arrays(arrays, config, source=path, dtype=dtype)
