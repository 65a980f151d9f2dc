"""How long a window the level normalisation should use, measured on validation clips.

The shipped networks are run with their trained weights and a level window of each length
asked (``off`` is the network as trained, without level normalisation; 0 normalises every
frame alone).  Two measurements, each on the 25 validation clips of the ``course`` split
(MIR-1K training singers; never the test clips):

- ``clips``: vocal GNSDR of the clips at MIR-1K's level, as scored by ``evaluate``;
- ``songs``: "songs" of two clips in a row, a quiet intro (20 dB down) and a loud chorus
  (peaking at 0.9), eight of them; each section's vocal NSDR in the song minus the same
  clip's NSDR separated alone at MIR-1K's level (0 is the best possible: the section is
  separated as if it were alone).

    python bench/level_window.py --data DIR --models ensemble,bigru,drnn2 --windows off,1000,20,10,4,2,1,0
    python bench/level_window.py --data DIR --what songs --models ensemble --windows off,10,4,2,1
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402,F401  (the checkout's scratchnet)


def relevel(model, window, sources):
    """The shipped model with level window ``window`` (None: as trained, without)."""
    from scratchnet.models import Ensemble, Model
    from scratchnet.training.prepare import with_level
    if window is None:
        if isinstance(model, Ensemble):
            return Ensemble([relevel(m, None, sources) for m in model.members])
        return Model(dict(model.config, level_window=None), params=model.params,
                     buffers={k: v for k, v in model.buffers.items() if k != "level"})
    return with_level(model, sources, window)


def clips_row(separator, valid):
    from scratchnet import metrics
    s = metrics.aggregate(metrics.evaluate(separator, valid, workers=2, progress=False))
    return {k: round(s["vocals"][k], 3) for k in ("GNSDR", "GSIR", "GSAR")}


def songs_row(separator, valid, n_pairs=8):
    import numpy as np

    from scratchnet import data, metrics
    from scratchnet.separation import separate_array
    clips = [data.load_clip(c) for c in valid[: 2 * n_pairs]]
    diffs = {"intro": [], "chorus": []}
    for (xa, va, aa), (xb, vb, ab) in zip(clips[0::2], clips[1::2]):
        gb = 0.9 / np.abs(xb).max()
        ga = gb * 10 ** (-20 / 20)
        x, v, a = (np.concatenate([p * ga, q * gb]) for p, q in ((xa, xb), (va, vb), (aa, ab)))
        ev, ea = separate_array(x, 16000, separator)
        n = len(xa)
        for part, sl, (xs, vs, as_) in (("intro", slice(0, n), (xa, va, aa)),
                                       ("chorus", slice(n, None), (xb, vb, ab))):
            in_song = metrics.bss_eval(v[sl], a[sl], ev[sl], ea[sl], x[sl])["vocals"]["NSDR"]
            alone = metrics.bss_eval(vs, as_, *separator.separate(xs), xs)["vocals"]["NSDR"]
            diffs[part].append((in_song - alone, len(xs)))
    return {f"{part}_minus_alone": round(sum(d * n for d, n in L) / sum(n for _, n in L), 3)
            for part, L in diffs.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="a MIR-1K folder")
    p.add_argument("--models", default="ensemble,bigru,drnn2")
    p.add_argument("--windows", default="off,1000,20,10,4,2,1,0", help="seconds, or off")
    p.add_argument("--what", choices=("clips", "songs"), default="clips")
    args = p.parse_args()
    from scratchnet import data, pretrained
    from scratchnet.models import load_model
    from scratchnet.separation import ModelSeparator
    train = data.find_parts(args.data, split_name="huang").parts["train"]
    sources = [data.load_sources(c) for c in train]  # the shipped models' training clips
    valid = data.find_parts(args.data, split_name="course").parts["valid"]
    for name in args.models.split(","):
        base = load_model(pretrained.path_of(name))
        for w in args.windows.split(","):
            window = None if w == "off" else float(w)
            sep = ModelSeparator(relevel(base, window, sources), name=name)
            row = clips_row(sep, valid) if args.what == "clips" else songs_row(sep, valid)
            print(json.dumps({"model": name, "window_s": window, **row}), flush=True)


if __name__ == "__main__":
    main()
