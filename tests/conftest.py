"""Shared fixtures: a fake MIR-1K folder made of synthetic songs, and the real one if given.

Real-audio tests take the folder from the environment variable ``SCRATCHNET_DATA`` and skip
when it is unset or missing; no MIR-1K audio is ever part of the repository.
"""
import os

# One BLAS thread per process, set before NumPy loads: the tests are many small GEMMs, and
# NumPy's and SciPy's OpenBLAS pools spin against each other (and against any training job)
# on a 2-core machine -- up to 60x slower.  The CLI does the same (cli.limit_blas_threads).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
# The course's graded checks log their times beside the notebook (scratchnet/course/_times.py):
# not from the tests, which grade in the checkout's folder (test_course_times turns it on).
os.environ["SCRATCHNET_COURSE_LOG"] = "0"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402

from scratchnet.synthetic import synth_song


@pytest.fixture(scope="session")
def mir1k_dir():
    """The real MIR-1K folder from ``SCRATCHNET_DATA``, or skip."""
    path = os.environ.get("SCRATCHNET_DATA")
    if not path or not os.path.isdir(path):
        pytest.skip("set SCRATCHNET_DATA to a MIR-1K folder to run the real-audio tests")
    return path


def write_fake_clip(folder, name, seconds=2.0, seed=0, ext=".flac", sr=16000):
    """A stereo clip shaped like MIR-1K's: left = accompaniment, right = vocals."""
    _, vocals, accompaniment = synth_song(seconds, sr=sr, seed=seed)
    stereo = np.stack([accompaniment, vocals], axis=1)
    stereo = 0.5 * stereo / np.max(np.abs(stereo))
    path = os.path.join(folder, name + ext)
    sf.write(path, stereo, sr, subtype="PCM_16")
    return path


@pytest.fixture(scope="session")
def fake_mir1k(tmp_path_factory):
    """A folder of 8 short synthetic clips named like MIR-1K (4 training, 4 test singers)."""
    folder = tmp_path_factory.mktemp("mir1k")
    names = ["abjones_1_01", "abjones_1_02", "amy_2_01", "amy_2_02",
             "Ani_1_01", "Ani_1_02", "heycat_3_01", "titon_4_05"]
    for i, name in enumerate(names):
        write_fake_clip(str(folder), name, seconds=1.5 + 0.25 * (i % 3), seed=i,
                        ext=".wav" if i % 2 else ".flac")
    (folder / "README.txt").write_text("not a clip")
    return str(folder)


def write_stems_track(folder, name, *, seconds=12.0, sr=22050, channels=2, seed=0,
                      split_accompaniment=False, mixture=True, ext=".wav"):
    """A track folder of the stems layout: vocals and accompaniment (or drums, bass and
    other: the accompaniment's low, high and middle bands, which sum to it), at ``sr``,
    ``channels`` channels (panned apart), with ``mixture`` the sum of them all."""
    _, vocals, accompaniment = synth_song(seconds, sr=sr, seed=seed)
    pan = np.linspace(1.0, 0.6, channels)  # a stereo image: each channel its own mix

    def spread(x, gains):
        return x[:, None] * gains if channels > 1 else x

    stems = {"vocals": spread(0.4 * vocals / np.abs(vocals).max(), pan)}
    acc = 0.4 * accompaniment / np.abs(accompaniment).max()
    if split_accompaniment:
        spec, f = np.fft.rfft(acc), np.fft.rfftfreq(acc.size, 1 / sr)
        bands = {"bass": f < 250, "drums": f >= 4000, "other": (f >= 250) & (f < 4000)}
        for stem, band in bands.items():
            stems[stem] = spread(np.fft.irfft(spec * band, acc.size), pan[::-1])
    else:
        stems["accompaniment"] = spread(acc, pan[::-1])
    track = os.path.join(folder, name)
    os.makedirs(track, exist_ok=True)
    for stem, y in stems.items():
        sf.write(os.path.join(track, stem + ext), y, sr, subtype="FLOAT" if ext == ".wav" else "PCM_24")
    if mixture:
        sf.write(os.path.join(track, "mixture" + ext), sum(stems.values()), sr,
                 subtype="FLOAT" if ext == ".wav" else "PCM_24")
    return track


@pytest.fixture(scope="session")
def fake_stems(tmp_path_factory):
    """A stems folder of 6 synthetic tracks: rates 16, 22.05 and 44.1 kHz, mono and stereo,
    accompaniment whole or as drums/bass/other, WAV and FLAC, 11 to 21 s (1 or 2 excerpts)."""
    folder = tmp_path_factory.mktemp("stems")
    for i in range(6):
        write_stems_track(str(folder), f"track {i} - artist", seconds=11.0 + 2 * i, seed=10 + i,
                          sr=(16000, 22050, 44100)[i % 3], channels=1 + i % 2,
                          split_accompaniment=i % 2 == 0, mixture=i < 4, ext=(".wav", ".flac")[i % 2])
    return str(folder)
