"""The separation networks: configs and architectures, the one table of layer kinds, the model.

================ ==========================================================
``config``       :data:`ARCHS`, :func:`make_config`, :func:`layer_specs`
``table``        :data:`LAYERS`: kind -> tensors, forward, backward, kink margin
``model``        :class:`Model` (a loop over the table, then the mask), saving
``ensemble``     :class:`Ensemble`: trained models joined by their mean soft mask
``loading``      :func:`load_model`: a saved model or ensemble, told apart by its config
================ ==========================================================
"""
from .config import ARCHS, DEFAULTS, FEATURES, layer_specs, make_config
from .ensemble import Ensemble
from .loading import load_model
from .model import Model, param_shapes
from .table import LAYERS

__all__ = ["ARCHS", "DEFAULTS", "Ensemble", "FEATURES", "LAYERS", "Model", "layer_specs", "load_model",
           "make_config", "param_shapes"]
