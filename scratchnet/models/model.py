"""The separation network: a short loop over the layer table, the mask, saving and loading.

Every model maps mixture magnitudes X (N, T, F) to two source estimates: the input features
(optionally log-compressed, then normalised with statistics stored with the model),
the layers of its spec list run in order (each keeping its cache), a linear output of 2F
units and Huang's joint soft mask, which multiplies the raw magnitudes X.  ``backward`` runs
the specs in reverse.  There is no hidden state and no autograd.

Inputs may first be brought to the training data's level (``level_window``: the gain of
:mod:`scratchnet.nn.level`, with the reference ``buffers["level"]``), so that the masks do
not depend on the input's gain; then compressed (``features="log1p"``: log(1 + X / ref)) and
normalised with ``buffers["mean"]`` and ``buffers["std"]``, set by the trainer from the
training data: per bin, or by one global scale (``feature_norm``, see config.py).  The mask
always multiplies the raw magnitudes X.
"""
import numpy as np

from .. import files
from ..errors import ScratchnetError
from ..nn import level, mask
from ..nn.backend import pick
from .config import ABSENT, layer_specs, make_config, model_rate
from .table import LAYERS


def param_shapes(config):
    """``{name: shape}`` of every trainable tensor, in layer order."""
    return {f"{s['name']}/{t}": shape for s in layer_specs(config)
            for t, (shape, _) in LAYERS[s["kind"]].tensors(s).items()}


class Model:
    """A separation network: ``forward`` / ``backward`` over its layer specs.

    Parameters
    ----------
    config : dict
        See :func:`scratchnet.models.config.make_config`.
    params : dict, optional
        Trained tensors; drawn with seeded Glorot-uniform initialisation when omitted.
    buffers : dict, optional
        Non-trained input statistics ``mean`` and ``std``, shape (F,), and with
        ``level_window`` the reference level ``level``, shape (1,).
    """

    def __init__(self, config, params=None, buffers=None):
        self.config = make_config(**config)
        self.dtype = np.dtype(self.config["dtype"])
        self.specs = layer_specs(self.config)
        # each layer's tensor names, and the first layer with weights: fixed by the config
        self._names = [list(LAYERS[s["kind"]].tensors(s)) for s in self.specs]
        self._first = min(i for i, names in enumerate(self._names) if names)
        F = self.config["n_bins"]
        self.params = params if params is not None else self._init_params()
        self.buffers = buffers if buffers is not None else {
            "mean": np.zeros(F, self.dtype), "std": np.ones(F, self.dtype)}
        if self.config["level_window"] is not None:
            self.buffers.setdefault("level", np.ones(1, self.dtype))

    def _init_params(self):
        rng = np.random.default_rng(self.config["seed"])
        return {f"{s['name']}/{t}": make(shape, rng, self.dtype)
                for s in self.specs for t, (shape, make) in LAYERS[s["kind"]].tensors(s).items()}

    def _tensors(self, i):
        """The tensors of layer ``i`` by short name: ``{"W": ..., "b": ...}``."""
        return {t: self.params[f"{self.specs[i]['name']}/{t}"] for t in self._names[i]}

    def first_layer_names(self):
        """The parameter names of the first layer with weights, whose input gradient training
        skips (:meth:`backward` with ``input_grad=False``)."""
        return [f"{self.specs[self._first]['name']}/{t}" for t in self._names[self._first]]

    def n_params(self):
        return int(sum(v.size for v in self.params.values()))

    # ------------------------------------------------------------------ forward / backward
    def level_half_window(self):
        """The level window's half width in frames (``level_window`` seconds in all), or None
        when the model is not level-normalised."""
        w = self.config["level_window"]
        if w is None:
            return None
        return int(round(w / 2 * model_rate(self.config) / self.config["hop_length"]))

    def level_gains(self, X):
        """The gains (N, T) that bring X (N, T, F) to the training level (None without
        ``level_window``: the input is used as it is)."""
        K = self.level_half_window()
        if K is None:
            return None
        return level.level_gains(X, float(self.buffers["level"][0]), K)

    def _features(self, X, gains=None):
        """Network input from magnitudes: the level gain, optional log compression, then
        standardisation; returns ``(features, level cache)``.  ``gains`` (N, T), when given,
        are used as constants (computed over a longer input than X: :meth:`predict`)."""
        lcache = None
        if gains is not None:
            X = (gains[..., None] * X).astype(X.dtype)
        elif self.config["level_window"] is not None:
            X, lcache = level.level_forward(X, float(self.buffers["level"][0]), self.level_half_window())
        Z = np.log1p(X / self.config["feature_ref"]) if self.config["features"] == "log1p" else X
        return (Z - self.buffers["mean"]) / self.buffers["std"], (X, lcache)  # N,T,F

    def _features_backward(self, dZ, fcache):
        Xn, lcache = fcache  # the level-normalised magnitudes and the level's cache
        dZ = dZ / self.buffers["std"]
        if self.config["features"] == "log1p":
            dZ = dZ / (self.config["feature_ref"] + Xn)  # d log1p(X/ref) / dX = 1 / (ref + X)
        return level.level_backward(dZ, lcache) if lcache is not None else dZ

    def forward(self, X, *, gains=None):
        """Source estimates for mixture magnitudes ``X`` (N, T, F); returns ``(y1, y2), cache``.

        y1 is the vocals' magnitude estimate, y2 the accompaniment's; y1 + y2 = X wherever the
        mask's eps is negligible.  ``gains`` (N, T) replace the level gains computed from X.
        """
        X = np.asarray(X, dtype=self.dtype)
        if X.ndim != 3 or X.shape[2] != self.config["n_bins"]:
            raise ScratchnetError(
                f"model expects magnitudes of shape (N, T, {self.config['n_bins']}), got {X.shape}")
        (h, fcache), caches = self._features(X, gains), []
        for i, spec in enumerate(self.specs):
            h, cache = LAYERS[spec["kind"]].forward(h, self._tensors(i), spec)
            caches.append(cache)
        (y1, y2), mask_cache = pick(mask, "mask_forward")(h, X, self.config["mask_eps"])
        return (y1, y2), (fcache, caches, mask_cache)

    def backward(self, dy1, dy2, cache, *, input_grad=True):
        """Gradients of the loss for every parameter, and for the input X.

        ``input_grad=False`` (training) stops at the first layer with weights: its input
        gradient is a GEMM as large as its forward pass, and nothing below it has weights.

        Returns
        -------
        grads : dict name -> ndarray, same shapes as ``params``
        dX : ndarray, shape (N, T, F), or None when ``input_grad`` is False
            Through both paths: the mask's direct use of X and the network's input.
        """
        fcache, caches, mask_cache = cache
        dh, dX = pick(mask, "mask_backward")(dy1, dy2, mask_cache)
        grads = {}
        for i in reversed(range(len(self.specs))):
            spec, need_dx = self.specs[i], input_grad or i > self._first
            dh, g = LAYERS[spec["kind"]].backward(dh, caches[i], self._tensors(i), spec, need_dx)
            grads.update({f"{spec['name']}/{t}": v for t, v in g.items()})
            if not need_dx:
                return grads, None  # nothing below the first weighted layer has weights
        return grads, dX + self._features_backward(dh, fcache)

    def loss_and_grad(self, X, t1, t2, loss_fn):
        """One batch: ``loss_fn(y1, y2, t1, t2) -> (loss, dy1, dy2)``; returns ``(loss, grads)``."""
        (y1, y2), cache = self.forward(X)
        loss, dy1, dy2 = loss_fn(y1, y2, t1, t2)
        grads, _ = self.backward(dy1, dy2, cache, input_grad=False)
        return loss, grads

    def kink_margin(self, X):
        """How far input ``X`` is from any kink of the network (for gradient checks).

        The smallest |pre-activation| of every ReLU (dense and recurrent), the smallest |a|
        entering the mask, and the smallest gap between a max-pool window's winner and its
        runner-up (windows whose winner is a ReLU's zero are guarded by that ReLU).  A
        centred difference with step h is exact up to O(h^2) only if no input moves a branch
        point, so checks assert this margin is far larger than h times the input's weight.
        """
        (h, _), margins = self._features(np.asarray(X, self.dtype)), []
        for i, spec in enumerate(self.specs):
            kind, p = LAYERS[spec["kind"]], self._tensors(i)
            out, _ = kind.forward(h, p, spec)
            m = kind.margin(h, out, p, spec) if kind.margin else None
            if m is not None:
                margins.append(m)
            h = out
        margins.append(float(np.abs(h).min()))  # |a| in the mask
        return float(min(margins))

    def predict(self, X, *, seq_len=None):
        """Estimates for one spectrogram X (T, F) -> (y1, y2), each (T, F).

        With ``seq_len`` the frames are cut into sequences of that length (the state restarts
        at each, as in training) and run as one batch; the remainder runs as its own sequence.
        The level gains are those of the whole spectrogram either way.
        """
        T = X.shape[0]
        g = self.level_gains(X[None])  # 1,T, or None

        def part(a, b, shape):  # the whole input's gains of frames a:b, as the batch is cut
            return None if g is None else g[0, a:b].reshape(shape)

        if not seq_len or T <= seq_len:
            (y1, y2), _ = self.forward(X[None], gains=g)
            return y1[0], y2[0]
        n_full = T // seq_len
        head = X[: n_full * seq_len].reshape(n_full, seq_len, -1)
        (a1, a2), _ = self.forward(head, gains=part(0, n_full * seq_len, (n_full, seq_len)))
        outs = [a1.reshape(-1, X.shape[1]), a2.reshape(-1, X.shape[1])]
        if T > n_full * seq_len:
            (b1, b2), _ = self.forward(X[None, n_full * seq_len:], gains=part(n_full * seq_len, T, (1, -1)))
            outs = [np.concatenate([outs[0], b1[0]]), np.concatenate([outs[1], b2[0]])]
        return outs[0], outs[1]

    # ------------------------------------------------------------------ arrays and files
    def arrays(self, storage_dtype=None):
        """Parameters and buffers as one flat dict, ``param:<name>`` and ``buffer:<name>``."""
        cast = (lambda v: v.astype(storage_dtype)) if storage_dtype else (lambda v: v)
        out = {f"param:{k}": cast(v) for k, v in self.params.items()}
        out.update({f"buffer:{k}": v for k, v in self.buffers.items()})
        return out

    def load_arrays(self, arrays, source="arrays"):
        """Copy a dict made by :meth:`arrays` into this model, in place, checking every tensor."""
        params = {k[6:]: v for k, v in arrays.items() if k.startswith("param:")}
        buffers = {k[7:]: v for k, v in arrays.items() if k.startswith("buffer:")}
        _check_tensors(params, self.config, source)
        _check_buffers(buffers, self.config, source)
        for k, v in params.items():
            self.params[k][...] = v
        for k, v in buffers.items():
            self.buffers[k] = np.asarray(v, self.dtype)
        return self

    def save(self, path, *, storage_dtype=None):
        """Write ``path`` (.npz: parameters, buffers and the config) and the config as .json beside.

        Both are written atomically (:mod:`scratchnet.files`).  ``storage_dtype="float16"``
        halves the file (for shipping); :func:`load_model` casts the parameters back to the
        config's dtype, so only their rounding changes.
        """
        return save_with_config(path, self.arrays(storage_dtype), self.config)


def save_with_config(path, arrays, config):
    """Write ``arrays`` and ``config`` to ``path`` (.npz) and the config as .json beside,
    each atomically; returns the .npz path.  Models and ensembles are saved through it."""
    path = str(path)  # a str or any os.PathLike
    base = path[:-4] if path.endswith(".npz") else path
    files.save_npz(base + ".npz", arrays, meta={"config": config})
    files.write_json(base + ".json", config)
    return base + ".npz"


def _check_tensors(params, config, source):
    expected = param_shapes(config)
    for name, shape in expected.items():
        if name not in params:
            raise ScratchnetError(f"{source}: tensor {name!r} is missing (config {config['arch']})")
        if params[name].shape != tuple(shape):
            raise ScratchnetError(f"{source}: tensor {name!r} has shape {params[name].shape}, "
                                  f"config {config['arch']} expects {tuple(shape)}")
        bad = int(np.size(params[name]) - np.count_nonzero(np.isfinite(params[name])))
        if bad:
            raise ScratchnetError(f"{source}: tensor {name!r} holds {bad} NaN or infinite value(s): "
                                  "the training diverged or the file is damaged")
    extra = set(params) - set(expected)
    if extra:
        raise ScratchnetError(f"{source}: unexpected tensor(s) {', '.join(sorted(extra))} for {config['arch']}")


def _check_buffers(buffers, config, source):
    """Input statistics of the shapes the config gives (mean and std (F,), level (1,)), finite,
    and a std and level above zero: a bad file is named in one line, not a NumPy traceback."""
    F = config["n_bins"]
    for name, v in buffers.items():
        want = (1,) if name == "level" else (F,)
        if np.shape(v) != want:
            raise ScratchnetError(f"{source}: buffer {name!r} has shape {np.shape(v)}, "
                                  f"the config's {F} bins need {want}")
        if not np.all(np.isfinite(v)) or (name in ("std", "level") and not np.all(np.asarray(v) > 0)):
            raise ScratchnetError(f"{source}: buffer {name!r} holds values that are not finite"
                                  + (" and positive" if name in ("std", "level") else "")
                                  + ": the file is damaged")


def model_from_arrays(arrays, config, *, source="arrays", dtype=None):
    """The :class:`Model` of ``config`` with the tensors of ``arrays`` (as :meth:`Model.arrays`
    made them); ``dtype`` overrides the config's.  A key the saved config lacks means what
    its absence meant when it was saved (:data:`~scratchnet.models.config.ABSENT`)."""
    config = {**ABSENT, **config}
    if dtype is not None:
        config = dict(config, dtype=np.dtype(dtype).name)
    config = make_config(**config)
    dt = np.dtype(config["dtype"])
    model = Model(config, params={k: np.zeros(s, dt) for k, s in param_shapes(config).items()})
    return model.load_arrays(arrays, source=source)
