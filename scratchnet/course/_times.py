"""When each graded check ran: the log a course measures its students' time from.

Every graded test (:func:`scratchnet.course._guard.grade`) appends one line to
``scratchnet_times.jsonl`` in the working directory, the notebook's folder::

    {"t": 1796355950.2, "part": "rnn_backward", "passed": false}

``nbgrader submit`` collects the whole assignment folder, so the log travels with the notebook,
and ``notebooks/assignments/times.py`` turns a class's submissions into the time each part
took: from a part's first check to its first pass, the checks it needed, and the working time
of the whole assignment (the gaps between checks, each counted up to :data:`IDLE` seconds, so
a night between two checks counts as a pause).  It holds nothing but those three fields.  A
student who does not want it deletes the file or sets ``SCRATCHNET_COURSE_LOG=0``; a folder
that cannot be written is skipped.  Logging never changes a check's outcome.
"""
import json
import os
import time

#: the log's file name, in the notebook's folder
LOG_NAME = "scratchnet_times.jsonl"

#: a gap between two checks longer than this (seconds) counts as this much work
IDLE = 20 * 60


def enabled():
    return os.environ.get("SCRATCHNET_COURSE_LOG", "1") != "0"


def record(part, passed, *, folder=None, now=None):
    """Append one check's time, part and outcome to the log of ``folder`` (default: here)."""
    if not enabled():
        return
    line = json.dumps({"t": round(time.time() if now is None else now, 1), "part": str(part),
                       "passed": bool(passed)})
    try:
        with open(os.path.join(folder or os.getcwd(), LOG_NAME), "a", encoding="utf-8") as f:
            f.write(line + "\n")
    except OSError:  # a read-only folder: the check itself must not suffer
        pass


def read_log(path):
    """The checks of one log file, oldest first: a list of ``(t, part, passed)``; lines that are
    not a check (a torn last line, an edit by hand) are left out."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                d = json.loads(line)
                rows.append((float(d["t"]), str(d["part"]), bool(d["passed"])))
            except (ValueError, KeyError, TypeError):
                continue
    return sorted(rows)


def working_time(rows, idle=IDLE):
    """Seconds of work from the first check to the last, each gap counted up to ``idle``."""
    ts = [t for t, _, _ in rows]
    return float(sum(min(b - a, idle) for a, b in zip(ts, ts[1:])))


def parts(rows, idle=IDLE):
    """Per part, in the order first checked: ``{part: (seconds to first pass or None, checks
    until the first pass, or all the checks if it never passed)}``; the seconds are working time
    (gaps up to ``idle``) over every check between the part's first check and its first pass."""
    out = {}
    for part in dict.fromkeys(p for _, p, _ in rows):
        mine = [i for i, (_, p, _) in enumerate(rows) if p == part]
        first_pass = next((i for i in mine if rows[i][2]), None)
        if first_pass is None:
            out[part] = (None, len(mine))
        else:
            out[part] = (working_time(rows[mine[0]:first_pass + 1], idle),
                         sum(1 for i in mine if i <= first_pass))
    return out
