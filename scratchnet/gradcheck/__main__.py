"""``python -m scratchnet.gradcheck [--only rnn,mask] [--threshold 1e-6] [--seed 0]``.

Prints the gradient table with a PASS/FAIL column and its threshold; exit status 0 when every
gradient passes, 1 when any fails, 2 for a bad option.
"""
import numpy as np

from .check import format_table, verdict
from .table import GROUPS, THRESHOLD, gradient_table


def _parse_args(argv):
    import argparse
    parser = argparse.ArgumentParser(
        prog="python -m scratchnet.gradcheck",
        description="Check every hand-written gradient of scratchnet against centred finite "
                    "differences (float64, h = 1e-6) and print one row per gradient with its "
                    f"relative error and PASS/FAIL. A gradient passes when its error is below "
                    f"--threshold (default {THRESHOLD:.0e}). Exit status 0 when all pass, 1 when "
                    "any fails, 2 for a bad option.",
        epilog="groups: " + ", ".join(GROUPS) + " (each gives rows: the GRU's and the LSTM's steps "
               "and sequences included). Example: python -m scratchnet.gradcheck --only gru,lstm")
    parser.add_argument("--only", metavar="GROUPS", default=None,
                        help="comma-separated groups to check, e.g. rnn,mask (default: all)")
    parser.add_argument("--threshold", type=float, default=THRESHOLD,
                        help=f"largest relative error that passes (default {THRESHOLD:.0e})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    args = parser.parse_args(argv)
    if args.only is not None:
        args.only = [g.strip() for g in args.only.split(",") if g.strip()]
        unknown = [g for g in args.only if g not in GROUPS]
        if unknown or not args.only:
            parser.error(f"--only {','.join(unknown) or '(empty)'}: choose among {', '.join(GROUPS)}")
    if not args.threshold > 0:
        parser.error(f"--threshold {args.threshold} must be a positive number")
    return args


def main(argv=None):
    """``python -m scratchnet.gradcheck [--only rnn,mask] [--threshold 1e-6]``; returns the exit status."""
    args = _parse_args(argv)
    rows = gradient_table(args.seed, only=args.only)
    print(f"relative error ||num - analytic|| / (||num|| + ||analytic||), centred differences in "
          f"float64 (h = 1e-6); PASS below {args.threshold:.0e}\n")
    print(format_table(rows, threshold=args.threshold))
    failed = [r for r in rows if verdict(r[2], args.threshold) == "FAIL"]
    worst = max(rows, key=lambda r: r[2] if np.isfinite(r[2]) else np.inf)
    print(f"\n{len(rows)} gradients checked, {len(rows) - len(failed)} PASS, {len(failed)} FAIL "
          f"(threshold {args.threshold:.0e}); worst: {worst[0]} {worst[1]} {worst[2]:.2e}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
