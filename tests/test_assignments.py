"""The course's graded assignments (notebooks/assignments), through nbgrader as a teacher runs it.

A copy of the course folder goes to a temporary directory; nbgrader generates every student
version (``generate_assignment``: solutions replaced by stubs, hidden tests removed), and two
students hand in: "solution" hands in the source notebook, "stub" the student version
untouched. ``autograde`` runs both in the fast setting (``SCRATCHNET_NOTEBOOK_FAST=1``) with the
hidden tests restored. The solution must get every point and the stub none. Skipped when
nbgrader (``pip install -e ".[course]"``) is not installed.

Learners without nbgrader use ``make_student_copy.py``: its copies must hold the same code as
nbgrader's student versions.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("nbgrader")
pytest.importorskip("nbclient")

COURSE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "notebooks", "assignments")
ASSIGNMENTS = ["bptt", "mask_and_objectives", "conv_and_pool", "train_your_own", "gated_cells"]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The course, generated and autograded; returns (course folder, {(assignment, student): (score, max)})."""
    from nbgrader.api import Gradebook
    from nbgrader.apps import NbGraderAPI
    from traitlets.config.loader import PyFileConfigLoader

    mp = pytest.MonkeyPatch()
    mp.setenv("SCRATCHNET_NOTEBOOK_FAST", "1")     # the kernels inherit it
    mp.setenv("OPENBLAS_NUM_THREADS", "1")
    mp.delenv("SCRATCHNET_DATA", raising=False)
    course = str(tmp_path_factory.mktemp("course") / "assignments")
    shutil.copytree(COURSE, course, ignore=shutil.ignore_patterns(
        "release", "submitted", "autograded", "feedback", "gradebook.db", ".ipynb_checkpoints"))
    config = PyFileConfigLoader("nbgrader_config.py", path=course).load_config()
    config.CourseDirectory.root = course
    api = NbGraderAPI(config=config)   # one process for every command: nbgrader's start-up once
    try:
        for a in ASSIGNMENTS:
            result = api.generate_assignment(a, force=True, create=True)
            assert result["success"], result.get("error") or result.get("log")
            for student, src in [("solution", "source"), ("stub", "release")]:
                os.makedirs(os.path.join(course, "submitted", student, a))
                shutil.copy(os.path.join(course, src, a, a + ".ipynb"), os.path.join(course, "submitted", student, a))
                result = api.autograde(a, student, force=True, create=True)
                assert result["success"], result.get("error") or result.get("log")
        with Gradebook(f"sqlite:///{os.path.join(course, 'gradebook.db')}") as gb:
            scores = {(a, s): (gb.find_submission(a, s).score, gb.find_submission(a, s).max_score)
                      for a in ASSIGNMENTS for s in ("solution", "stub")}
    finally:
        mp.undo()
    return course, scores


def code_cells(path):
    with open(path, encoding="utf-8") as f:
        nb = json.load(f)
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def source_of(cell):
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_solution_gets_every_point_and_the_stub_none(graded, assignment):
    _, scores = graded
    score, max_score = scores[assignment, "solution"]
    assert max_score >= 10 and score == max_score, f"{assignment}: the source version scored {score}/{max_score}"
    score, _ = scores[assignment, "stub"]
    assert score == 0, f"{assignment}: the student version scored {score} on its stubs"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_student_version_holds_no_solution_and_no_hidden_test(graded, assignment):
    course, _ = graded
    released = "\n".join(source_of(c) for c in code_cells(os.path.join(course, "release", assignment, assignment + ".ipynb")))
    assert "BEGIN SOLUTION" not in released and "HIDDEN TESTS" not in released
    assert released.count("raise NotImplementedError()") >= 2
    source = "\n".join(source_of(c) for c in code_cells(os.path.join(COURSE, "source", assignment, assignment + ".ipynb")))
    assert source.count("### BEGIN HIDDEN TESTS") >= 2, f"{assignment}: hidden tests with other seeds and shapes"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_make_student_copy_gives_nbgraders_student_version(graded, assignment, tmp_path):
    course, _ = graded
    out = tmp_path / (assignment + ".ipynb")
    script = os.path.join(COURSE, "make_student_copy.py")
    subprocess.run([sys.executable, script, os.path.join(COURSE, "source", assignment, assignment + ".ipynb"),
                    "-o", str(out)], check=True, capture_output=True, timeout=60)
    mine = [source_of(c).rstrip() for c in code_cells(out)]
    nbgraders = [source_of(c).rstrip() for c in code_cells(os.path.join(course, "release", assignment, assignment + ".ipynb"))]
    assert mine == nbgraders
    assert all(not c["outputs"] for c in code_cells(out))


def test_the_committed_sources_carry_no_outputs():
    """Sources are committed clean: nbgrader clears outputs anyway, and a diff stays readable."""
    for a in ASSIGNMENTS:
        cells = code_cells(os.path.join(COURSE, "source", a, a + ".ipynb"))
        assert all(not c["outputs"] and c["execution_count"] is None for c in cells), a
