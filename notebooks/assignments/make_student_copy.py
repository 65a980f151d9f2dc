"""Student copies of the course's assignments, for learners without nbgrader.

nbgrader's ``generate_assignment`` is the teacher's tool (notebooks/README.md). A learner on
their own can make the same student version with this script, which needs nothing but Python:
it replaces every region between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` by nbgrader's
stub (``# YOUR CODE HERE`` / ``raise NotImplementedError()`` in code, at the region's
indentation; ``YOUR ANSWER HERE`` in a written answer, whose model answer and rubric go with it),
removes the hidden tests (``### BEGIN HIDDEN TESTS`` .. ``### END HIDDEN TESTS``) and clears every
output::

    python notebooks/assignments/make_student_copy.py notebooks/assignments/source/bptt/bptt.ipynb -o bptt.ipynb
    python notebooks/assignments/make_student_copy.py --all -o my_course/    # every assignment

The visible tests stay, and they call :mod:`scratchnet.course`, so the copy checks itself.
"""
import argparse
import glob
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]
TEXT_STUB = ["YOUR ANSWER HERE"]


def strip_source(source, stub=STUB):
    """A cell's source with its solutions replaced by the stub and its hidden tests removed."""
    out, skipping = [], None
    for line in source.split("\n"):
        marker = line.strip()
        if skipping is None and marker == "### BEGIN SOLUTION":
            indent = line[:len(line) - len(line.lstrip())]
            out += [indent + s for s in stub]
            skipping = "### END SOLUTION"
        elif skipping is None and marker == "### BEGIN HIDDEN TESTS":
            skipping = "### END HIDDEN TESTS"
        elif skipping is not None:
            if marker == skipping:
                skipping = None
        else:
            out.append(line)
    if skipping is not None:
        raise ValueError(f"a region is not closed: no {skipping!r}")
    return "\n".join(out)


def student_copy(src, dst):
    """Write the student version of notebook ``src`` to ``dst``."""
    with open(src, encoding="utf-8") as f:
        nb = json.load(f)
    for cell in nb["cells"]:
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        is_solution = cell.get("metadata", {}).get("nbgrader", {}).get("solution", False)
        if cell["cell_type"] == "code":
            cell["source"] = strip_source(source)
            if is_solution and cell["source"] == source:  # a solution cell without a region: all of it
                cell["source"] = "\n".join(STUB)
            cell["outputs"], cell["execution_count"] = [], None
        elif cell["cell_type"] == "markdown":
            cell["source"] = strip_source(source, TEXT_STUB)
            if is_solution and cell["source"] == source:
                cell["source"] = "\n".join(TEXT_STUB)
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    tmp = dst + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(nb, f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, dst)  # complete or absent, never half-written
    return dst


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", nargs="?", help="a source notebook (source/<name>/<name>.ipynb)")
    parser.add_argument("--all", action="store_true", help="every assignment of source/")
    parser.add_argument("-o", "--out", required=True, help="output notebook, or folder with --all")
    args = parser.parse_args(argv)
    if args.all == bool(args.notebook):
        parser.error("give one notebook or --all")
    if args.all:
        for src in sorted(glob.glob(os.path.join(HERE, "source", "*", "*.ipynb"))):
            print(student_copy(src, os.path.join(args.out, os.path.basename(src))))
    elif not os.path.isfile(args.notebook):
        parser.error(f"no notebook {args.notebook!r}")
    else:
        print(student_copy(args.notebook, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
