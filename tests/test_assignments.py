"""The course's graded assignments (notebooks/assignments), through nbgrader as a teacher runs it.

A copy of the course folder goes to a temporary directory; nbgrader generates every student
version (``generate_assignment``: solutions replaced by stubs, hidden tests and the written
answers' model answers and rubrics removed), and four students hand in each assignment:

- "solution" hands in the source notebook: every autograded point;
- "stub" the student version untouched: no point;
- "cheat" replaces every answer by scratchnet's own (imported, returned, called from a wrapper, a
  ``functools.partial``, the ``REFERENCE`` dictionary): no point, and each failure says why;
- "cascade" one wrong line in a part that later parts build on (the step backward's ReLU mask,
  MSE's factor 2, ...): only the broken part's points are lost, as every later part is graded on
  scratchnet's version of the parts it builds on.

``autograde`` runs them in the fast setting (``SCRATCHNET_NOTEBOOK_FAST=1``) with the hidden tests
restored. Every failure a student sees must be a checker's line and a ``NotPassed`` (never a bare
``AssertionError``, nor an error in a cell that is not a test). Skipped when nbgrader
(``pip install -e ".[course]"``) is not installed.

Learners without nbgrader use ``make_student_copy.py``: its copies must be nbgrader's student
versions, cell for cell.
"""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

pytest.importorskip("nbgrader")
pytest.importorskip("nbclient")

COURSE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "notebooks", "assignments")
ASSIGNMENTS = ["bptt", "mask_and_objectives", "conv_and_pool", "train_your_own", "gated_cells"]
STUDENTS = ["solution", "stub", "cheat", "cascade"]

#: assignment -> {solution cell's grade_id: what a cheating student puts there}
CHEATS = {
    "bptt": {
        "rnn_step_forward": "from scratchnet.nn.rnn import rnn_step_forward",
        "rnn_forward": "import scratchnet.nn.rnn\n\n\ndef rnn_forward(x, h0, Wx, Wh, b):\n"
                       "    return scratchnet.nn.rnn.rnn_forward(x, h0, Wx, Wh, b)",
        "rnn_step_backward": "import scratchnet.nn.rnn\n\n\ndef rnn_step_backward(dnext_h, cache):\n"
                             "    return scratchnet.nn.rnn.rnn_step_backward(dnext_h, cache)",
        "rnn_backward": "from scratchnet.nn.rnn import rnn_backward as _bptt\n\n\ndef rnn_backward(dh, cache):\n"
                        "    return _bptt(dh, cache)",
        "truncated_rnn_backward": "from scratchnet.course import truncated_rnn_backward",
    },
    "mask_and_objectives": {
        "mask_backward": "from scratchnet.nn.mask import mask_backward",
        "mse_loss": "from scratchnet.losses import mse_loss",
        "kl_and_is": "from scratchnet.course import REFERENCE\nkl_loss = REFERENCE['kl']\n\n\n"
                     "def is_loss(y1, y2, t1, t2, gamma=0.0, floor=FLOOR):\n"
                     "    return REFERENCE['is'](y1, y2, t1, t2, gamma=gamma, floor=floor)",
    },
    "conv_and_pool": {
        "conv1d_backward_loops": "from scratchnet.nn.conv1d import conv1d_backward as conv1d_backward_loops",
        "conv1d_backward": "import functools\nimport scratchnet.nn.conv1d\n"
                           "conv1d_backward = functools.partial(scratchnet.nn.conv1d.conv1d_backward_fast)",
        "maxpool": "from scratchnet.nn.maxpool1d import maxpool1d_backward, maxpool1d_forward",
    },
    "train_your_own": {
        "pieces": "from scratchnet.losses import mse_loss\nfrom scratchnet.nn.mask import mask_backward\n"
                  "from scratchnet.nn.rnn import rnn_step_backward",
        "train_step": "import functools\nfrom scratchnet import losses\n\n\ndef train_step(model, opt, X, V, A):\n"
                      "    loss, grads = model.loss_and_grad(X, V, A, functools.partial(losses.mse_loss, gamma=GAMMA))\n"
                      "    opt.step(model.params, grads)\n    return loss",
        "train": "from scratchnet.course._guard import reference_train\n\n\ndef train(model, opt, stream, steps):\n"
                 "    return reference_train(model, opt, stream, steps, train_step)",
        "separate": "from scratchnet.separation import ModelSeparator\n\n\ndef separate(model, mixture):\n"
                    "    return ModelSeparator(model).separate(mixture)",
    },
    "gated_cells": {
        "lstm_step_backward": "from scratchnet.nn.lstm import lstm_step_backward",
        "gru_step_backward": "from scratchnet.nn.gru import gru_step_backward as _g\n\n\n"
                             "def gru_step_backward(dnext_h, cache):\n    return _g(dnext_h, cache)",
    },
}

#: assignment -> ({solution cell's grade_id: (line of the solution, the wrong line)}, the test cells that must fail)
CASCADES = {
    "bptt": ({"rnn_step_backward": ("dz = dnext_h * (next_h > 0)", "dz = dnext_h")},
             {"test_rnn_step_backward"}),
    "mask_and_objectives": ({"mse_loss": ("return float(J), 2 * ((y1 - t1)", "return float(J), ((y1 - t1)")},
                            {"test_mse_loss"}),
    "conv_and_pool": ({"conv1d_backward_loops": ("dx_pad[n, t + k] += w[k]", "dx_pad[n, t + k] = w[k]"),
                       "maxpool": ("argmax[:, t] = t * stride + window.argmax(axis=1)",
                                   "argmax[:, t] = t * stride + pool_size - 1 - window[:, ::-1].argmax(axis=1)")},
                      {"test_conv1d_backward_loops", "test_maxpool_forward"}),
    "train_your_own": ({"pieces": ("return float(J), 2 * ((y1 - t1)", "return float(J), ((y1 - t1)")},
                       {"test_mse_loss"}),
    "gated_cells": ({"lstm_step_backward": ("dc = dnext_c + dnext_h", "dc = dnext_h")},
                    {"test_lstm_step_backward"}),
}


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def source_of(cell):
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def text_of(cell):
    """What a code cell printed."""
    return "".join(o["text"] if isinstance(o["text"], str) else "".join(o["text"])
                   for o in cell["outputs"] if "text" in o)


def nbgrader_meta(cell):
    return cell.get("metadata", {}).get("nbgrader", {})


def code_cells(path):
    return [c for c in load(path)["cells"] if c["cell_type"] == "code"]


def submission(src, student, assignment):
    """The source notebook as ``student`` hands it in (see CHEATS, CASCADES)."""
    nb = load(src)
    for cell in nb["cells"]:
        gid = nbgrader_meta(cell).get("grade_id")
        if student == "cheat" and gid in CHEATS[assignment]:
            cell["source"] = CHEATS[assignment][gid]
        if student == "cascade" and gid in CASCADES[assignment][0]:
            right, wrong = CASCADES[assignment][0][gid]
            assert right in source_of(cell), (assignment, gid, right)
            cell["source"] = source_of(cell).replace(right, wrong)
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The course, generated and autograded. Returns (course folder, {(assignment, student):
    {"code": (score, max), "written_max": points, "cells": {grade_id: score}, "seconds": s}})."""
    from nbgrader.api import Gradebook
    from nbgrader.apps import NbGraderAPI
    from traitlets.config.loader import PyFileConfigLoader

    mp = pytest.MonkeyPatch()
    mp.setenv("SCRATCHNET_NOTEBOOK_FAST", "1")     # the kernels inherit it
    mp.setenv("OPENBLAS_NUM_THREADS", "1")
    mp.delenv("SCRATCHNET_DATA", raising=False)
    course = str(tmp_path_factory.mktemp("course") / "assignments")
    shutil.copytree(COURSE, course, ignore=shutil.ignore_patterns(
        "release", "submitted", "autograded", "feedback", "gradebook.db", "grades.csv", ".ipynb_checkpoints"))
    config = PyFileConfigLoader("nbgrader_config.py", path=course).load_config()
    config.CourseDirectory.root = course
    api = NbGraderAPI(config=config)   # one process for every command: nbgrader's start-up once
    seconds = {}
    try:
        for a in ASSIGNMENTS:
            result = api.generate_assignment(a, force=True, create=True)
            assert result["success"], result.get("error") or result.get("log")
            for student in STUDENTS:
                folder = os.path.join(course, "submitted", student, a)
                os.makedirs(folder)
                if student == "stub":
                    shutil.copy(os.path.join(course, "release", a, a + ".ipynb"), folder)
                else:
                    nb = submission(os.path.join(course, "source", a, a + ".ipynb"), student, a)
                    with open(os.path.join(folder, a + ".ipynb"), "w", encoding="utf-8") as f:
                        json.dump(nb, f)
                t0 = time.perf_counter()
                result = api.autograde(a, student, force=True, create=True)
                seconds[a, student] = time.perf_counter() - t0
                assert result["success"], result.get("error") or result.get("log")
        out = {}
        with Gradebook(f"sqlite:///{os.path.join(course, 'gradebook.db')}") as gb:
            for a in ASSIGNMENTS:
                for s in STUDENTS:
                    sub = gb.find_submission(a, s)
                    nb = sub.notebooks[0]
                    out[a, s] = {"code": (sub.code_score, sub.max_code_score), "written_max": sub.max_written_score,
                                 "cells": {g.name: (g.auto_score, g.max_score) for g in nb.grades
                                           if g.cell_type == "code"},
                                 "seconds": seconds[a, s]}
    finally:
        mp.undo()
    for (a, s), r in sorted(out.items()):   # the table of the course's report (pytest -s shows it)
        print(f"{a:<20} {s:<9} {r['code'][0]:>4g} / {r['code'][1]:<4g} autograded in {r['seconds']:5.1f} s")
    return course, out


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_solution_gets_every_point_and_the_stub_none(graded, assignment):
    _, scores = graded
    score, max_score = scores[assignment, "solution"]["code"]
    assert max_score >= 10 and score == max_score, f"{assignment}: the source version scored {score}/{max_score}"
    score, _ = scores[assignment, "stub"]["code"]
    assert score == 0, f"{assignment}: the student version scored {score} on its stubs"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_scratchnets_own_answers_score_nothing(graded, assignment):
    """Every answer replaced by scratchnet's own implementation: no point, each failure says why."""
    course, scores = graded
    score, _ = scores[assignment, "cheat"]["code"]
    assert score == 0, f"{assignment}: scratchnet's own answers scored {score}: {scores[assignment, 'cheat']['cells']}"
    nb = load(os.path.join(course, "autograded", "cheat", assignment, assignment + ".ipynb"))
    for cell in nb["cells"]:
        if nbgrader_meta(cell).get("grade") and cell["cell_type"] == "code":
            text = text_of(cell)
            assert "scratchnet's own" in text and "cannot score" in text, (assignment, nbgrader_meta(cell)["grade_id"], text)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_one_bug_costs_its_own_part_only(graded, assignment):
    """One wrong line in a part that others build on: exactly that part's test cells fail."""
    _, scores = graded
    cells = scores[assignment, "cascade"]["cells"]
    failed = {name for name, (score, max_score) in cells.items() if score != max_score}
    assert failed == CASCADES[assignment][1], f"{assignment}: {cells}"
    lost = sum(cells[c][1] for c in failed)
    score, max_score = scores[assignment, "cascade"]["code"]
    assert score == max_score - lost


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_failure_is_a_checker_line(graded, assignment):
    """Whatever a student hands in, the only errors are graded tests' NotPassed, after FAIL lines."""
    course, _ = graded
    for student in ("stub", "cheat", "cascade"):
        nb = load(os.path.join(course, "autograded", student, assignment, assignment + ".ipynb"))
        for cell in nb["cells"]:
            if cell["cell_type"] != "code":
                continue
            errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
            where = (assignment, student, nbgrader_meta(cell).get("grade_id"))
            if not nbgrader_meta(cell).get("grade"):
                assert not errors, f"{where}: an error in a cell that is not a test: {errors}"
                continue
            for e in errors:
                assert e["ename"] == "NotPassed", f"{where}: {e['ename']}: {e['evalue']}"
                text = text_of(cell)
                assert "FAIL" in text, f"{where}: no checker line before the failure"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_written_questions_with_points_and_a_rubric(graded, assignment):
    """2-4 manually graded answers per assignment; their model answers and rubrics stay in the source."""
    course, scores = graded
    source = load(os.path.join(COURSE, "source", assignment, assignment + ".ipynb"))
    answers = [c for c in source["cells"] if c["cell_type"] == "markdown" and nbgrader_meta(c).get("grade")]
    assert 2 <= len(answers) <= 4, f"{assignment}: {len(answers)} written questions"
    for c in answers:
        assert nbgrader_meta(c)["solution"] and nbgrader_meta(c)["points"] >= 1
        assert "**Rubric" in source_of(c) and "### BEGIN SOLUTION" in source_of(c)
    assert scores[assignment, "solution"]["written_max"] == sum(nbgrader_meta(c)["points"] for c in answers)
    released = load(os.path.join(course, "release", assignment, assignment + ".ipynb"))
    text = "\n".join(source_of(c) for c in released["cells"])
    assert "Rubric" not in text and "Model answer" not in text
    assert text.count("YOUR ANSWER HERE") == len(answers)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_student_version_holds_no_solution_and_no_hidden_test(graded, assignment):
    course, _ = graded
    released = "\n".join(source_of(c) for c in code_cells(os.path.join(course, "release", assignment, assignment + ".ipynb")))
    assert "BEGIN SOLUTION" not in released and "HIDDEN TESTS" not in released
    assert "REFERENCE" not in released, f"{assignment}: the student version imports scratchnet's answers"
    assert released.count("raise NotImplementedError()") >= 2
    source = "\n".join(source_of(c) for c in code_cells(os.path.join(COURSE, "source", assignment, assignment + ".ipynb")))
    assert source.count("### BEGIN HIDDEN TESTS") >= 2, f"{assignment}: hidden tests with other seeds and shapes"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_test_cell_says_how_it_is_graded(assignment):
    """Each graded test cell opens with a comment: on its own, or on scratchnet's parts it builds on."""
    for c in code_cells(os.path.join(COURSE, "source", assignment, assignment + ".ipynb")):
        if nbgrader_meta(c).get("grade"):
            src = source_of(c)
            assert "grade(" in src, f"{assignment}: {nbgrader_meta(c)['grade_id']} does not grade through grade()"
            assert src.startswith("#"), f"{assignment}: {nbgrader_meta(c)['grade_id']} says nothing of its grading"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_make_student_copy_gives_nbgraders_student_version(graded, assignment, tmp_path):
    course, _ = graded
    out = tmp_path / (assignment + ".ipynb")
    script = os.path.join(COURSE, "make_student_copy.py")
    subprocess.run([sys.executable, script, os.path.join(COURSE, "source", assignment, assignment + ".ipynb"),
                    "-o", str(out)], check=True, capture_output=True, timeout=60)
    mine = [(c["cell_type"], source_of(c).rstrip()) for c in load(out)["cells"]]
    nbgraders = [(c["cell_type"], source_of(c).rstrip())
                 for c in load(os.path.join(course, "release", assignment, assignment + ".ipynb"))["cells"]]
    assert mine == nbgraders
    assert all(not c["outputs"] for c in code_cells(out))


def test_the_committed_sources_carry_no_outputs():
    """Sources are committed clean: nbgrader clears outputs anyway, and a diff stays readable."""
    for a in ASSIGNMENTS:
        cells = code_cells(os.path.join(COURSE, "source", a, a + ".ipynb"))
        assert all(not c["outputs"] and c["execution_count"] is None for c in cells), a
