"""STFT + ISTFT round trip of a 3-minute 16 kHz signal: scratchnet.signal against SciPy.

Both use n_fft 1024, hop 512 and the sine window; SciPy's side is
``scipy.signal.ShortTimeFFT`` (``stft`` then ``istft``).  The two run alternately,
``--repeats`` times each, and the table gives the median seconds and the median of the
per-turn ratios scipy / ours (> 1: scratchnet is faster).  Both reconstruct the input; the
largest reconstruction error of each is printed too.

    python bench/bench_stft.py
    python bench/bench_stft.py --seconds 60 --repeats 9
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=180.0)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads (FFTs are single-threaded)")
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args()
    _common.set_threads(args.threads)

    import numpy as np
    from scipy.signal import ShortTimeFFT

    from scratchnet.signal import get_window, istft, stft

    sr, n_fft, hop = 16000, 1024, 512
    x = np.random.default_rng(0).standard_normal(int(args.seconds * sr))
    sft = ShortTimeFFT(get_window("sine", n_fft), hop=hop, fs=sr, mfft=n_fft, fft_mode="onesided")

    def ours():
        S = stft(x, n_fft=n_fft, hop_length=hop, window="sine")
        return istft(S, n_fft=n_fft, hop_length=hop, window="sine", length=len(x))

    def scipy_():
        S = sft.stft(x)
        return sft.istft(S, k1=len(x))

    err = {"ours": np.abs(ours() - x).max(), "scipy": np.abs(scipy_() - x).max()}  # also warms up
    times = {"ours": [], "scipy": []}
    for _ in range(args.repeats):
        for name, f in (("ours", ours), ("scipy", scipy_)):
            t0 = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t0)
    ratios = [b / a for a, b in zip(times["ours"], times["scipy"])]
    rows = [[f"{args.seconds:g} s at 16 kHz", _common.median(times["ours"]), _common.median(times["scipy"]),
             _common.median(ratios), f"{min(ratios):.2f}-{max(ratios):.2f}",
             f"{err['ours']:.1e} / {err['scipy']:.1e}"]]
    text = _common.table(["signal", "ours s", "scipy s", "speed-up scipy/ours (median)", "range",
                          "max error ours / scipy"], rows)
    text += f"\n\nSTFT + ISTFT, n_fft 1024, hop 512, sine window, float64; {args.repeats} alternating turns."
    _common.report("STFT + ISTFT round trip, scratchnet vs scipy.signal.ShortTimeFFT", text,
                   threads=args.threads, append=not args.no_append)


if __name__ == "__main__":
    main()
