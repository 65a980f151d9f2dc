"""scratchnet: singing-voice separation with hand-written backpropagation (NumPy + Numba).

Deep recurrent networks after Huang et al. (ISMIR 2014, TASLP 2015) and a hybrid
CNN-DNN-RNN after Amer & Al Tmeme (2021), every backward pass written by hand and checked by
finite differences.  Start with :func:`separate` (arrays) or the ``scratchnet`` command.

Importing the package loads nothing heavy: NumPy, SciPy and Numba come in with the modules
that use them (``scratchnet.separation`` when :func:`separate` is first called), so that
``scratchnet --help`` answers at once.
"""
__version__ = "0.1.0"


def separate(mixture, sr, *, model=None, method="drnn", mono=False):
    """Separate a song into ``(vocals, accompaniment)``, each of the input's shape and rate.

    Parameters
    ----------
    mixture : array_like, shape (n,) or (n, channels)
        Time first, as ``soundfile.read`` returns it.  An array with more channels than
        samples, such as a channels-first ``(2, n)``, is refused: pass ``mixture.T``.
    sr : int
        Its sample rate, any.
    model : str, optional
        A shipped model's name (``scratchnet models``) or a trained model's ``.npz``;
        default the shipped DRNN.
    method : {"drnn", "rpca"}
    mono : bool
        Average the channels first and return mono stems, shape (n,).

    Notes
    -----
    Several channels are separated with one mask, computed from their mean and applied to
    each channel's STFT: the stems keep the song's stereo image and sum back to it.

    Examples
    --------
    >>> import soundfile as sf, scratchnet                       # doctest: +SKIP
    >>> song, sr = sf.read("song.wav")                           # doctest: +SKIP
    >>> vocals, accompaniment = scratchnet.separate(song, sr)    # doctest: +SKIP
    >>> vocals.shape == song.shape                               # doctest: +SKIP
    True
    """
    from .audio import as_signal
    from .errors import ScratchnetError
    from .separation import get_separator, separate_array
    mixture = as_signal(mixture, "mixture")  # numbers, 1 or 2 dimensions, not empty, finite
    shape = mixture.shape
    if len(shape) == 2 and shape[1] > shape[0]:
        raise ScratchnetError(
            f"mixture of shape {shape} reads as {shape[1]} channels of {shape[0]} samples: "
            f"pass time first, shape (n, channels) as soundfile returns it (mixture.T)")
    return separate_array(mixture, sr, get_separator(method, model=model), mono=mono)
