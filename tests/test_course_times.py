"""The course's time log (scratchnet/course/_times.py) and the teacher's summary of it
(notebooks/assignments/times.py)."""
import importlib.util
import os

import pytest

from scratchnet.course import _times

HERE = os.path.dirname(os.path.abspath(__file__))


def _times_script():
    spec = importlib.util.spec_from_file_location(
        "times_script", os.path.join(HERE, "..", "notebooks", "assignments", "times.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(autouse=True)
def _logging_on(monkeypatch):
    monkeypatch.setenv("SCRATCHNET_COURSE_LOG", "1")  # conftest turns it off for the other tests


def _log(folder, checks):
    os.makedirs(folder, exist_ok=True)
    for t, part, ok in checks:
        _times.record(part, ok, folder=str(folder), now=t)


def test_a_log_keeps_each_check_in_order_and_skips_torn_lines(tmp_path):
    _log(tmp_path, [(100.0, "a", False), (160.0, "a", True)])
    with open(tmp_path / _times.LOG_NAME, "a") as f:
        f.write('{"t": 170, "part"')  # a write cut short
    assert _times.read_log(tmp_path / _times.LOG_NAME) == [(100.0, "a", False), (160.0, "a", True)]


def test_working_time_counts_a_long_gap_as_a_pause():
    rows = [(0.0, "a", False), (300.0, "a", True), (300.0 + 86400, "b", True)]
    assert _times.working_time(rows) == 300 + _times.IDLE
    assert _times.working_time(rows, idle=60) == 120


def test_each_part_from_its_first_check_to_its_first_pass():
    rows = [(0, "a", False), (60, "a", False), (200, "a", True), (260, "b", False), (400, "a", True)]
    got = _times.parts(rows)
    assert got == {"a": (200.0, 3), "b": (None, 1)}


def test_logging_can_be_turned_off_and_never_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("SCRATCHNET_COURSE_LOG", "0")
    _times.record("a", True, folder=str(tmp_path))
    assert not (tmp_path / _times.LOG_NAME).exists()
    monkeypatch.setenv("SCRATCHNET_COURSE_LOG", "1")
    _times.record("a", True, folder=str(tmp_path / "no such folder"))  # nothing raised


def test_the_summary_of_a_class(tmp_path, capsys):
    sub = tmp_path / "submitted"
    _log(sub / "ann" / "bptt", [(0, "rnn_step_backward", False), (600, "rnn_step_backward", True),
                                (1200, "rnn_backward", True)])
    _log(sub / "bob" / "bptt", [(0, "rnn_step_backward", True), (1800, "rnn_backward", False)])
    _log(sub / "bob" / "gated_cells", [(0, "gru_step_backward", True)])
    script = _times_script()
    assert script.main([str(sub), "--assignment", "bptt"]) == 0
    out = capsys.readouterr().out
    assert "## bptt" in out and "gated_cells" not in out
    assert "2 logs; working time 20 min" in out  # ann 20 min, bob 20 (a 30 min gap counts 20)
    assert "| rnn_step_backward | 2 of 2 | 5.0 | 1.5 |" in out  # ann 10 min in 2 checks, bob 0 in 1
    assert "| rnn_backward | 1 of 2 | 0.0 | 1 |" in out


def test_the_summary_refuses_a_missing_folder_in_one_line(tmp_path, capsys):
    script = _times_script()
    assert script.main([str(tmp_path / "nope")]) == 2
    assert script.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("times.py: ") for line in err)


@pytest.mark.parametrize("ok", [True, False])
def test_a_graded_check_is_logged(tmp_path, monkeypatch, ok):
    from scratchnet.course._guard import NotPassed, grade

    def check(fn):
        return fn()

    def my_part():
        return ok

    monkeypatch.chdir(tmp_path)
    if ok:
        grade(check, my_part)
    else:
        with pytest.raises(NotPassed):
            grade(check, my_part)
    rows = _times.read_log(tmp_path / _times.LOG_NAME)
    assert [(p, passed) for _, p, passed in rows] == [("my_part", ok)]
