"""The shipped models, chosen by name: ``--model drnn2`` or a path to any saved ``.npz``.

Each entry names its file (beside this module), its model card and one line that
``scratchnet models`` prints.  Scores are vocal GNSDR in dB on the 417 test clips of the
shared MIR-1K copy, the same at any input level (see each card for the full tables and how
each model was chosen).
"""
import os

from ..errors import ScratchnetError

HERE = os.path.dirname(os.path.abspath(__file__))

#: name -> file, model card, one-line description
SHIPPED = {
    "drnn2": {
        "file": "drnn.npz",
        "card": "MODEL_CARD.md",
        "summary": "Huang et al.'s DRNN-2 as published: 3 x 1000 ReLU units, recurrence on layer 2, "
                   "discriminative MSE, raw magnitudes, all 175 training clips; 7.75 dB vocal GNSDR "
                   "(417 test clips, any input level)",
    },
    "bigru": {
        "file": "bigru.npz",
        "card": "MODEL_CARD_bigru.md",
        "summary": "DRNN-2 layout with a bidirectional GRU (2 x 400) as its recurrent layer, trained with "
                   "remix/pitch/gain augmentation; 8.43 dB vocal GNSDR (417 test clips, any input level)",
    },
    "ensemble": {
        "file": "ensemble.npz",
        "card": "MODEL_CARD_ensemble.md",
        "summary": "the mean soft mask of four bigru-like models: the strongest augmentation with "
                   "and without random equalisation on one input scale for all bins, the first "
                   "again on per-bin input, bigru's augmentation with equalisation; "
                   "9.05 dB vocal GNSDR (417 test clips, any input level)",
    },
}

#: the model ``separate``, ``demo``, ``evaluate --method drnn`` and the Python API use by default
DEFAULT = "ensemble"


def path_of(name=None):
    """The ``.npz`` path of shipped model ``name`` (default: :data:`DEFAULT`), or ``name`` itself
    when it is a path to a file.  An unknown name gets one line listing the shipped ones."""
    name = DEFAULT if name is None else os.fspath(name)
    if name in SHIPPED:
        return os.path.join(HERE, SHIPPED[name]["file"])
    if os.path.exists(name) or name.endswith(".npz") or os.sep in name:
        return name  # a path: load_model says what is wrong with it, if anything
    raise ScratchnetError(f"unknown model {name!r}: give a path to a .npz file or one of the "
                          f"shipped models {', '.join(SHIPPED)} (scratchnet models lists them)")


def name_of(path):
    """The shipped name of ``path``, or None for a model of the user's own."""
    for name, entry in SHIPPED.items():
        if os.path.abspath(path) == os.path.join(HERE, entry["file"]):
            return name
    return None


def describe():
    """One line per shipped model: name (default marked), file size, summary, model card."""
    lines = []
    for name, entry in SHIPPED.items():
        path = os.path.join(HERE, entry["file"])
        size = f"{os.path.getsize(path) / 1e6:.0f} MB" if os.path.isfile(path) else "missing"
        mark = " (default)" if name == DEFAULT else ""
        lines.append(f"{name}{mark}: {entry['summary']}; {size}; card {os.path.join(HERE, entry['card'])}")
    return lines
