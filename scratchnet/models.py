"""The separation networks, built from a config: DNN, DRNN-k, stacked RNN and the hybrid.

Every model maps mixture magnitudes X (N, T, F) to two source estimates through a stack of
layers from :mod:`scratchnet.layers` and :mod:`scratchnet.recurrent`, a linear output of
2F units and Huang's joint soft mask (:func:`scratchnet.layers.mask_forward`).  A model is
a list of layer specs plus a dict of parameter arrays; :meth:`Model.forward` runs the specs in
order keeping each cache, :meth:`Model.backward` runs them in reverse.  There is no hidden
state and no autograd: each spec kind names one forward/backward pair.

Architectures (``config["arch"]``)
-----------------------------------
``dnn``
    context window of ``context`` frames each side, ``layers`` hidden ReLU layers of
    ``hidden`` units, linear output 2F, mask (Huang et al. 2014, Fig. 2).
``drnn-k``
    as ``dnn`` with hidden layer k recurrent, h_t = relu(W x_t + U h_{t-1} + b).
``srnn``
    every hidden layer recurrent (stacked RNN).
``hybrid``
    Amer & Al Tmeme (2021): three Conv1D (kernel 3) + MaxPool1D (size 3, stride 1) blocks
    with 512, 256, 128 filters, four dense layers (1024, 128, 256, 512), three recurrent
    layers of 256, linear output 2F, mask.  Our reading: the convolutions run along *time*
    with the F frequency bins as input channels, so the first kernel sees three whole
    frames.  The paper's parameter table counts a one-channel input (a convolution along
    frequency of a single frame), which would make the recurrent layers the only part that
    sees more than one frame; we keep time as the convolved axis because a temporal
    receptive field is what a convolutional front end adds to a DRNN, and say so here.
    Max-pooling with stride 1 and "same" padding keeps the frame count, so each output
    frame still has its own mask.  Training note: with eleven ReLU layers in a row this
    model wants a smaller step than the DRNNs.  At Adam 1e-3 its activations grew a
    thousandfold within 200 batches and it stalled on a near-constant mask (validation
    5.2 dB); at 3e-4 it trains (``configs/hybrid_huang.json``, figures/README.md).

Inputs may be compressed before the first layer (``features="log1p"``: log(1 + X / ref)) and
standardised with per-bin statistics stored with the model (``buffers["mean"]``,
``buffers["std"]``), set by the trainer from the training data.  The mask always multiplies
the raw magnitudes X.
"""
import json
import os

import numpy as np

from . import layers as L
from . import recurrent as R
from .errors import ScratchnetError
from .signal import HOP_LENGTH, N_FFT, WINDOW

ARCHS = ("dnn", "drnn-1", "drnn-2", "drnn-3", "srnn", "hybrid")

DEFAULTS = {
    "arch": "drnn-2", "n_bins": 1 + N_FFT // 2, "hidden": 1000, "layers": 3, "context": 1,
    "features": "magnitude", "feature_ref": 1e-3, "mask_eps": 1e-8, "bptt_clip": None,
    "conv_filters": [512, 256, 128], "conv_kernel": 3, "pool_size": 3, "pool_stride": 1,
    "dense": [1024, 128, 256, 512], "rnn": [256, 256, 256],
    "n_fft": N_FFT, "hop_length": HOP_LENGTH, "window": WINDOW, "seed": 0, "dtype": "float32",
    "inference_seq_len": None,
}


def make_config(**overrides):
    """A full model config: :data:`DEFAULTS` updated with ``overrides`` (unknown keys rejected)."""
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ScratchnetError(f"unknown model option(s): {', '.join(sorted(unknown))}")
    config = dict(DEFAULTS, **overrides)
    if config["arch"] not in ARCHS:
        raise ScratchnetError(f"unknown model {config['arch']!r}: choose one of {', '.join(ARCHS)}")
    if config["features"] not in ("magnitude", "log1p"):
        raise ScratchnetError(f"features={config['features']!r} must be 'magnitude' or 'log1p'")
    return config


def layer_specs(config):
    """The list of layer specs (dicts) that an architecture is made of."""
    F, arch = config["n_bins"], config["arch"]
    specs = []
    if arch == "hybrid":
        d = F
        for i, c in enumerate(config["conv_filters"], 1):
            specs += [{"kind": "conv", "name": f"conv{i}", "in": d, "out": c, "k": config["conv_kernel"]},
                      {"kind": "relu"},
                      {"kind": "pool", "size": config["pool_size"], "stride": config["pool_stride"]}]
            d = c
        for i, h in enumerate(config["dense"], 1):
            specs += [{"kind": "dense", "name": f"dense{i}", "in": d, "out": h}, {"kind": "relu"}]
            d = h
        for i, h in enumerate(config["rnn"], 1):
            specs.append({"kind": "rnn", "name": f"rnn{i}", "in": d, "out": h})
            d = h
    else:
        k = config["context"]
        specs.append({"kind": "context", "k": k})
        d = (2 * k + 1) * F
        H, n = config["hidden"], config["layers"]
        recurrent = set(range(1, n + 1)) if arch == "srnn" else (
            {int(arch.split("-")[1])} if arch.startswith("drnn") else set())
        if recurrent and max(recurrent) > n:
            raise ScratchnetError(f"{arch} needs at least {max(recurrent)} hidden layers, got layers={n}")
        for i in range(1, n + 1):
            if i in recurrent:
                specs.append({"kind": "rnn", "name": f"hidden{i}", "in": d, "out": H})
            else:
                specs += [{"kind": "dense", "name": f"hidden{i}", "in": d, "out": H}, {"kind": "relu"}]
            d = H
    specs.append({"kind": "dense", "name": "out", "in": d, "out": 2 * F})
    return specs


def param_shapes(config):
    """``{name: shape}`` of every trainable tensor, in layer order."""
    shapes = {}
    for s in layer_specs(config):
        if s["kind"] == "dense":
            shapes[f"{s['name']}/W"] = (s["in"], s["out"])
            shapes[f"{s['name']}/b"] = (s["out"],)
        elif s["kind"] == "rnn":
            shapes[f"{s['name']}/W"] = (s["in"], s["out"])
            shapes[f"{s['name']}/U"] = (s["out"], s["out"])
            shapes[f"{s['name']}/b"] = (s["out"],)
        elif s["kind"] == "conv":
            shapes[f"{s['name']}/W"] = (s["k"], s["in"], s["out"])
            shapes[f"{s['name']}/b"] = (s["out"],)
    return shapes


class Model:
    """A separation network: ``forward`` / ``backward`` over its layer specs.

    Parameters
    ----------
    config : dict
        See :func:`make_config`.
    params : dict, optional
        Trained tensors; drawn with seeded Glorot-uniform initialisation when omitted.
    buffers : dict, optional
        Non-trained input statistics ``mean`` and ``std``, shape (F,).
    """

    def __init__(self, config, params=None, buffers=None):
        self.config = make_config(**config)
        self.dtype = np.dtype(self.config["dtype"])
        self.specs = layer_specs(self.config)
        F = self.config["n_bins"]
        self.params = params if params is not None else self._init_params()
        self.buffers = buffers if buffers is not None else {
            "mean": np.zeros(F, self.dtype), "std": np.ones(F, self.dtype)}

    def _init_params(self):
        rng = np.random.default_rng(self.config["seed"])
        p = {}
        for s in self.specs:
            if s["kind"] == "dense":
                p[f"{s['name']}/W"] = L.glorot_uniform(s["in"], s["out"], rng, self.dtype)
            elif s["kind"] == "rnn":
                p[f"{s['name']}/W"] = L.glorot_uniform(s["in"], s["out"], rng, self.dtype)
                p[f"{s['name']}/U"] = L.recurrent_uniform(s["out"], rng, self.dtype)
            elif s["kind"] == "conv":
                p[f"{s['name']}/W"] = L.conv_glorot(s["k"], s["in"], s["out"], rng, self.dtype)
            if s["kind"] in ("dense", "rnn", "conv"):
                p[f"{s['name']}/b"] = np.zeros(s["out"], self.dtype)
        return p

    def n_params(self):
        return int(sum(v.size for v in self.params.values()))

    # ------------------------------------------------------------------ forward / backward
    def _features(self, X):
        """Network input from magnitudes: optional log compression, then standardisation."""
        if self.config["features"] == "log1p":
            ref = self.config["feature_ref"]
            Z = np.log1p(X / ref)  # N,T,F
        else:
            Z = X
        return (Z - self.buffers["mean"]) / self.buffers["std"]

    def _features_backward(self, dZ, X):
        dZ = dZ / self.buffers["std"]
        if self.config["features"] == "log1p":
            ref = self.config["feature_ref"]
            dZ = dZ / (ref + X)  # d log1p(X/ref) / dX = 1 / (ref + X)
        return dZ

    def forward(self, X):
        """Source estimates for mixture magnitudes ``X`` (N, T, F); returns ``(y1, y2), cache``.

        y1 is the vocals' magnitude estimate, y2 the accompaniment's; y1 + y2 = X wherever the
        mask's eps is negligible.
        """
        X = np.asarray(X, dtype=self.dtype)
        if X.ndim != 3 or X.shape[2] != self.config["n_bins"]:
            raise ScratchnetError(
                f"model expects magnitudes of shape (N, T, {self.config['n_bins']}), got {X.shape}")
        h = self._features(X)
        caches = []
        p = self.params
        for s in self.specs:
            kind = s["kind"]
            if kind == "context":
                h, c = L.context_forward(h, s["k"])
            elif kind == "dense":
                h, c = L.affine_forward(h, p[f"{s['name']}/W"], p[f"{s['name']}/b"])
            elif kind == "relu":
                h, c = L.relu_forward(h)
            elif kind == "rnn":
                h, c = R.rnn_forward(h, None, p[f"{s['name']}/W"], p[f"{s['name']}/U"], p[f"{s['name']}/b"])
            elif kind == "conv":
                h, c = L.conv1d_forward(h, p[f"{s['name']}/W"], p[f"{s['name']}/b"])
            elif kind == "pool":
                h, c = L.maxpool1d_forward(h, s["size"], s["stride"], "same")
            caches.append(c)
        (y1, y2), mask_cache = L.mask_forward(h, X, self.config["mask_eps"])
        return (y1, y2), (X, caches, mask_cache)

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
        X, caches, mask_cache = cache
        dh, dX = L.mask_backward(dy1, dy2, mask_cache)
        grads = {}
        clip = self.config["bptt_clip"]
        first = min(i for i, s in enumerate(self.specs) if s["kind"] in ("dense", "rnn", "conv"))
        for i in reversed(range(len(self.specs))):
            s, c = self.specs[i], caches[i]
            kind, need_dx = s["kind"], input_grad or i > first
            if kind == "context":
                dh = L.context_backward(dh, c)
            elif kind == "dense":
                dh, grads[f"{s['name']}/W"], grads[f"{s['name']}/b"] = L.affine_backward(
                    dh, c, input_grad=need_dx)
            elif kind == "relu":
                dh = L.relu_backward(dh, c)
            elif kind == "rnn":
                dh, _, dW, dU, db = R.rnn_backward(dh, c, clip=clip, input_grad=need_dx)
                grads[f"{s['name']}/W"], grads[f"{s['name']}/U"], grads[f"{s['name']}/b"] = dW, dU, db
            elif kind == "conv":
                dh, grads[f"{s['name']}/W"], grads[f"{s['name']}/b"] = L.conv1d_backward(
                    dh, c, input_grad=need_dx)
            elif kind == "pool":
                dh = L.maxpool1d_backward(dh, c)
            if not need_dx:
                return grads, None  # nothing below the first weighted layer has weights
        dX = dX + self._features_backward(dh, X)
        return grads, dX

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
        p, h, margins = self.params, self._features(np.asarray(X, self.dtype)), []
        for s in self.specs:
            k, name = s["kind"], s.get("name")
            if k == "context":
                h, _ = L.context_forward(h, s["k"])
            elif k == "dense":
                h, _ = L.affine_forward(h, p[f"{name}/W"], p[f"{name}/b"])
            elif k == "relu":
                margins.append(np.abs(h).min())
                h = np.maximum(h, 0)
            elif k == "conv":
                h, _ = L.conv1d_forward(h, p[f"{name}/W"], p[f"{name}/b"])
            elif k == "pool":
                left, right = (s["size"] - 1) // 2, s["size"] // 2
                pad = np.pad(h, ((0, 0), (left, right), (0, 0)), constant_values=-np.inf)
                win = np.sort(np.lib.stride_tricks.sliding_window_view(pad, s["size"], axis=1), -1)
                live = win[..., -1] > 0
                if live.any():
                    margins.append((win[..., -1] - win[..., -2])[live].min())
                h, _ = L.maxpool1d_forward(h, s["size"], s["stride"], "same")
            elif k == "rnn":
                W, U, b = p[f"{name}/W"], p[f"{name}/U"], p[f"{name}/b"]
                hp, outs = np.zeros((h.shape[0], W.shape[1]), h.dtype), []
                for t in range(h.shape[1]):
                    z = h[:, t] @ W + hp @ U + b  # N,H pre-activation of step t
                    margins.append(np.abs(z).min())
                    hp = np.maximum(z, 0)
                    outs.append(hp)
                h = np.stack(outs, 1)
        margins.append(np.abs(h).min())  # |a| in the mask
        return float(min(margins))

    def predict(self, X, *, seq_len=None):
        """Estimates for one spectrogram X (T, F) -> (y1, y2), each (T, F).

        With ``seq_len`` the frames are cut into sequences of that length (the state restarts
        at each, as in training) and run as one batch; the remainder runs as its own sequence.
        """
        T = X.shape[0]
        if not seq_len or T <= seq_len:
            (y1, y2), _ = self.forward(X[None])
            return y1[0], y2[0]
        n_full = T // seq_len
        head = X[: n_full * seq_len].reshape(n_full, seq_len, -1)
        (a1, a2), _ = self.forward(head)
        outs = [a1.reshape(-1, X.shape[1]), a2.reshape(-1, X.shape[1])]
        if T > n_full * seq_len:
            (b1, b2), _ = self.forward(X[None, n_full * seq_len:])
            outs = [np.concatenate([outs[0], b1[0]]), np.concatenate([outs[1], b2[0]])]
        return outs[0], outs[1]

    # ------------------------------------------------------------------ saving
    def save(self, path, *, storage_dtype=None):
        """Write ``path`` (.npz: parameters and buffers) and ``path`` with .json (the config).

        Both are written to temporary names and renamed, so a crash never leaves half a file.
        ``storage_dtype="float16"`` halves the file (for shipping); :func:`load_model` casts
        the parameters back to the config's dtype, so only their rounding changes.
        """
        base = path[:-4] if path.endswith(".npz") else path
        cast = (lambda v: v.astype(storage_dtype)) if storage_dtype else (lambda v: v)
        arrays = {f"param:{k}": cast(v) for k, v in self.params.items()}
        arrays.update({f"buffer:{k}": v for k, v in self.buffers.items()})
        arrays["config_json"] = np.array(json.dumps(self.config))
        tmp = base + ".tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, base + ".npz")
        with open(base + ".json.tmp", "w") as f:
            json.dump(self.config, f, indent=2)
        os.replace(base + ".json.tmp", base + ".json")
        return base + ".npz"


def load_model(path, *, dtype=None):
    """Load a model saved by :meth:`Model.save`; a mismatching tensor is named in the error."""
    if not os.path.isfile(path):
        raise ScratchnetError(f"model file {path!r} does not exist")
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ScratchnetError(f"{path!r} is not a scratchnet model (.npz): {e}") from None
    with z:
        base = path[:-4] if path.endswith(".npz") else path
        if os.path.isfile(base + ".json"):
            with open(base + ".json") as f:
                config = json.load(f)
        elif "config_json" in z:
            config = json.loads(str(z["config_json"]))
        else:
            raise ScratchnetError(f"{path!r} has no config (expected {base + '.json'})")
        if dtype is not None:
            config["dtype"] = np.dtype(dtype).name
        params = {k[6:]: z[k] for k in z.files if k.startswith("param:")}
        buffers = {k[7:]: z[k] for k in z.files if k.startswith("buffer:")}
    config = make_config(**config)
    expected = param_shapes(config)
    for name, shape in expected.items():
        if name not in params:
            raise ScratchnetError(f"{path}: tensor {name!r} is missing (config {config['arch']})")
        if params[name].shape != tuple(shape):
            raise ScratchnetError(f"{path}: tensor {name!r} has shape {params[name].shape}, "
                                  f"config {config['arch']} expects {tuple(shape)}")
    extra = set(params) - set(expected)
    if extra:
        raise ScratchnetError(f"{path}: unexpected tensor(s) {', '.join(sorted(extra))} for {config['arch']}")
    dt = np.dtype(config["dtype"])
    params = {k: np.ascontiguousarray(params[k], dtype=dt) for k in expected}
    buffers = {k: v.astype(dt) for k, v in buffers.items()}
    return Model(config, params, buffers)
