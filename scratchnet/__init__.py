"""scratchnet: singing-voice separation with hand-written backpropagation (NumPy + Numba).

Deep recurrent networks after Huang et al. (ISMIR 2014, TASLP 2015) and a hybrid
CNN-DNN-RNN after Amer & Al Tmeme (2021), every backward pass written by hand and checked by
finite differences.  Start with :func:`separate` (arrays) or the ``scratchnet`` command.

Importing the package loads nothing heavy: NumPy, SciPy and Numba come in with the modules
that use them (``scratchnet.separation`` when :func:`separate` is first called), so that
``scratchnet --help`` answers at once.
"""
__version__ = "0.1.0"


def separate(mixture, sr, *, model=None, method="drnn"):
    """Separate a waveform (n,) or (n, channels) at rate ``sr`` into (vocals, accompaniment).

    Uses the shipped DRNN unless ``model`` (a path) or another ``method`` ("rpca") is given.
    The outputs have the input's rate and length.
    """
    from .separation import get_separator, separate_array
    return separate_array(mixture, sr, get_separator(method, model=model))
