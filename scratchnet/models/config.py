"""Model configs and architectures: what a DNN, DRNN-k, stacked RNN and the hybrid are made of.

A config is a flat dict (:data:`DEFAULTS` updated by the user's choices); an architecture is
the list of layer *specs* that :func:`layer_specs` makes from it, each a dict whose ``kind``
names a row of :data:`scratchnet.models.table.LAYERS`.  Every model ends with a linear
output of 2F units and Huang's joint soft mask.

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

``unet``
    a U-Net over the spectrogram (:mod:`scratchnet.models.unet`): ``unet_channels`` per
    scale, ``unet_kernel`` x ``unet_kernel`` convolutions over time and frequency, each scale
    halving both axes, skip connections (``unet_skips``, on by default), and a 1 x 1 convolution to the mask's two channels
    (no dense output layer).  Fully convolutional: it trains on patches and separates a
    chunk of any length.  With ``unet_rnn`` = H, the U-Net's one output channel beside the
    input features feeds a recurrent layer of H units (``cell``, ``bidirectional``), then the
    linear output 2F.

Every recurrent layer uses the cell ``cell`` (``relu``: Huang's h_t = relu(W x_t + U h_{t-1} +
b); the gated cells of :mod:`scratchnet.nn`), and with ``bidirectional`` a second cell reads
the sequence backwards, doubling the layer's output.

Input features (``features``, ``feature_norm``): the mixture's magnitudes X, or log(1 + X /
``feature_ref``), then normalised with statistics of the training data stored in the model:
``per_bin`` (the default) subtracts each bin's mean and divides by its deviation, so every
bin weighs alike; ``global`` divides by one number, the root mean square over all bins and
frames, and keeps the spectrum's shape (a quiet high bin stays small), as Huang et al. fed
raw magnitudes.

Input level (``level_window``, seconds, or None): the magnitudes are first brought to the
training clips' level by a gain computed over a window of that many seconds centred on each
frame (:mod:`scratchnet.nn.level`), so that a song mastered 30 dB louder than MIR-1K, or a
quiet one, is separated alike.  The default, 2 s, was chosen on validation clips among
windows of 0 to 1000 s: on MIR-1K's clips it scores as the network did without it (within
0.02 dB), and a quiet intro before a loud chorus is separated as if alone (figures/README.md,
"Separation at any level").  Models saved before the option existed have None.

The STFT (``n_fft``, ``hop_length``, ``window``) is part of the config: a model is trained,
validated and run with one STFT, and ``n_bins = 1 + n_fft // 2`` follows from it unless a
test gives ``n_bins`` alone.  So is the rate the network runs at (``sample_rate``, default
16 kHz, at most that): songs are brought to 16 kHz first, as ever, and a model at a lower rate
(SH-4stack's 8 kHz with a 1024/256 STFT, say) hears its clips resampled again, in training as in
separation; its vocals are resampled back to 16 kHz and the accompaniment is the mixture minus
them, so the band above its Nyquist rate goes to the accompaniment.  It is scored at 16 kHz.
"""
from ..errors import ScratchnetError
from ..signal import HOP_LENGTH, N_FFT, SAMPLE_RATE, WINDOW

ARCHS = ("dnn", "drnn-1", "drnn-2", "drnn-3", "srnn", "hybrid", "unet")
FEATURES = ("magnitude", "log1p")
FEATURE_NORMS = ("per_bin", "global")
CELLS = ("relu", "gru", "lstm")

DEFAULTS = {
    "arch": "drnn-2", "n_bins": None, "hidden": 1000, "layers": 3, "context": 1,
    "features": "magnitude", "feature_ref": 1e-3, "mask_eps": 1e-8, "bptt_clip": None,
    "conv_filters": [512, 256, 128], "conv_kernel": 3, "pool_size": 3, "pool_stride": 1,
    "dense": [1024, 128, 256, 512], "rnn": [256, 256, 256],
    "n_fft": N_FFT, "hop_length": HOP_LENGTH, "window": WINDOW, "seed": 0, "dtype": "float32",
    "inference_seq_len": None, "cell": "relu", "bidirectional": False, "mask_power": 1.0,
    "feature_norm": "per_bin", "level_window": 2.0,
    "unet_channels": [8, 16, 32, 64], "unet_kernel": 3, "unet_rnn": None, "unet_skips": True,
    "sample_rate": SAMPLE_RATE,
}

#: what a config saved before a key existed meant by its absence (it ran without the feature)
ABSENT = {"level_window": None}


def make_config(**overrides):
    """A full model config: :data:`DEFAULTS` updated with ``overrides`` (unknown keys rejected)."""
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ScratchnetError(f"unknown model option(s): {', '.join(sorted(unknown))}")
    config = dict(DEFAULTS, **overrides)
    if config["arch"] not in ARCHS:
        raise ScratchnetError(f"unknown model {config['arch']!r}: choose one of {', '.join(ARCHS)}")
    for key, choices in (("features", FEATURES), ("feature_norm", FEATURE_NORMS), ("cell", CELLS)):
        if config[key] not in choices:
            raise ScratchnetError(f"{key}={config[key]!r} must be one of {', '.join(choices)}")
    n_fft, hop = config["n_fft"], config["hop_length"]
    if not (isinstance(n_fft, int) and n_fft >= 2 and isinstance(hop, int) and 0 < hop <= n_fft):
        raise ScratchnetError(f"n_fft={n_fft!r} and hop_length={hop!r} must be integers, "
                              "0 < hop_length <= n_fft")
    if config["dtype"] not in ("float32", "float64"):
        raise ScratchnetError(f"dtype={config['dtype']!r} must be float32 or float64")
    w = config["level_window"]
    if w is not None and not (isinstance(w, (int, float)) and not isinstance(w, bool) and 0 <= w < 1e6):
        raise ScratchnetError(f"level_window={w!r} must be a number of seconds >= 0, or None")
    ch, k = config["unet_channels"], config["unet_kernel"]
    if not (isinstance(ch, (list, tuple)) and len(ch) >= 1
            and all(isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in ch)):
        raise ScratchnetError(f"unet_channels={ch!r} must be a list of positive integers, one per scale")
    if not (isinstance(k, int) and not isinstance(k, bool) and k >= 1 and k % 2 == 1):
        raise ScratchnetError(f"unet_kernel={k!r} must be an odd positive integer")
    r = config["unet_rnn"]
    if r is not None and not (isinstance(r, int) and not isinstance(r, bool) and r >= 0):
        raise ScratchnetError(f"unet_rnn={r!r} must be a number of recurrent units, or None")
    sr = config["sample_rate"]
    if not (isinstance(sr, int) and not isinstance(sr, bool) and 1000 <= sr <= SAMPLE_RATE):
        raise ScratchnetError(f"sample_rate={sr!r} must be an integer number of Hz from 1000 to "
                              f"{SAMPLE_RATE} (the rate songs are brought to first)")
    if not isinstance(config["unet_skips"], bool):
        raise ScratchnetError(f"unet_skips={config['unet_skips']!r} must be true or false")
    if config["n_bins"] is None:
        config["n_bins"] = 1 + n_fft // 2
    return config


def stft_options(config):
    """The STFT a model config (or an ensemble's) names, as keywords for
    :func:`scratchnet.data.magnitudes` and :func:`scratchnet.signal.stft`.

    A model is trained, validated and run with the STFT stored in its config (``n_fft``,
    ``hop_length``, ``window``); configs saved before those keys existed get the defaults.
    """
    return {"n_fft": config.get("n_fft", N_FFT), "hop_length": config.get("hop_length", HOP_LENGTH),
            "window": config.get("window", WINDOW)}


def model_rate(config):
    """The sample rate a model config's network runs at (``sample_rate``; configs saved before
    the key existed ran at :data:`~scratchnet.signal.SAMPLE_RATE`)."""
    return config.get("sample_rate", SAMPLE_RATE)


def layer_specs(config):
    """The list of layer specs (dicts) that an architecture is made of."""
    F, arch = config["n_bins"], config["arch"]
    specs = []
    if arch == "unet":
        unet = {"kind": "unet", "name": "unet", "channels": list(config["unet_channels"]),
                "kernel": config["unet_kernel"]}
        if not config["unet_skips"]:  # an ablation: the decoder without its skip connections
            unet["skips"] = False
        if not config["unet_rnn"]:  # ends in the mask's two channels itself: no dense output layer
            return [unet]
        # the U-Net's one channel beside the input, into a recurrent layer (cell, bidirectional)
        specs = [dict(unet, head=1, keep_input=True), _recurrent(config, "rnn", 2 * F, config["unet_rnn"])]
        return specs + [{"kind": "dense", "name": "out", "in": specs[-1]["width"], "out": 2 * F}]
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
            specs.append(_recurrent(config, f"rnn{i}", d, h))
            d = specs[-1]["width"]
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
                specs.append(_recurrent(config, f"hidden{i}", d, H))
                d = specs[-1]["width"]
            else:
                specs += [{"kind": "dense", "name": f"hidden{i}", "in": d, "out": H}, {"kind": "relu"}]
                d = H
    specs.append({"kind": "dense", "name": "out", "in": d, "out": 2 * F})
    return specs


def _recurrent(config, name, d, H):
    """The spec of a recurrent layer of H units per direction; ``width`` is its output size."""
    bi = bool(config["bidirectional"])
    return {"kind": "rnn", "name": name, "in": d, "out": H, "clip": config["bptt_clip"],
            "cell": config["cell"], "bidirectional": bi, "width": 2 * H if bi else H}
