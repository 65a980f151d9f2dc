"""How long a class took: the time of each assignment and each part, from the students' logs.

Every graded check a student runs appends its time, part and outcome to
``scratchnet_times.jsonl`` beside the notebook (:mod:`scratchnet.course._times`), and
``nbgrader submit`` collects it with the notebook.  Run from the course folder after
``nbgrader collect`` (or on any folders holding such logs)::

    python times.py submitted/                 # every assignment, every student
    python times.py submitted/ --assignment bptt --idle 15

For each assignment it prints the number of logs, the median and quartiles of the working time
(first check to last, each gap between two checks counted up to ``--idle`` minutes), and per
part the median time from its first check to its first pass, the median number of checks until
it passed, and how many never passed.  The time before a student's first check (reading the
notebook) is not in the log: the syllabus's times add it from the notebook's length.
"""
import argparse
import collections
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from scratchnet.course._times import IDLE, LOG_NAME, parts, read_log, working_time  # noqa: E402


def find_logs(folders, assignment=None):
    """``{assignment: [log path, ..]}`` of every log under ``folders``; a log's assignment is the
    name of the folder that holds it (nbgrader: ``submitted/<student>/<assignment>/``)."""
    found = collections.defaultdict(list)
    for top in folders:
        for root, _, files in os.walk(top):
            if LOG_NAME in files:
                name = os.path.basename(os.path.normpath(root))
                if assignment in (None, name):
                    found[name].append(os.path.join(root, LOG_NAME))
    return dict(found)


def _quartiles(xs):
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    q1, q2, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return q1, q2, q3


def summary(logs, idle=IDLE):
    """The markdown lines of one assignment's logs."""
    runs = [read_log(p) for p in logs]
    runs = [r for r in runs if r]
    if not runs:
        return ["no checks in these logs"]
    q1, q2, q3 = (x / 60 for x in _quartiles([working_time(r, idle) for r in runs]))
    lines = [f"{len(runs)} logs; working time {q2:.0f} min (quartiles {q1:.0f}-{q3:.0f}), "
             f"gaps counted up to {idle / 60:g} min", "",
             "| part | passed | median minutes to pass | median checks to pass |", "| --- | ---: | ---: | ---: |"]
    per = collections.defaultdict(list)
    for r in runs:
        for part, got in parts(r, idle).items():
            per[part].append(got)
    for part, got in per.items():
        ok = [g for g in got if g[0] is not None]
        minutes = f"{statistics.median(g[0] for g in ok) / 60:.1f}" if ok else "-"
        checks = f"{statistics.median(g[1] for g in ok):g}" if ok else "-"
        lines.append(f"| {part} | {len(ok)} of {len(got)} | {minutes} | {checks} |")
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", help="folders holding the logs (nbgrader's submitted/)")
    p.add_argument("--assignment", default=None, help="only this assignment")
    p.add_argument("--idle", type=float, default=IDLE / 60, help="minutes a gap counts at most (default 20)")
    args = p.parse_args(argv)
    missing = [f for f in args.folders if not os.path.isdir(f)]
    if missing:
        print(f"times.py: no such folder: {missing[0]}", file=sys.stderr)
        return 2
    found = find_logs(args.folders, args.assignment)
    if not found:
        print(f"times.py: no {LOG_NAME} under {', '.join(args.folders)}", file=sys.stderr)
        return 2
    for name in sorted(found):
        print(f"## {name}\n")
        print("\n".join(summary(found[name], args.idle * 60)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
