"""The teaching notebooks in ``notebooks/`` run top to bottom without an error.

Each notebook is copied into a temporary folder and executed there by nbclient in a fresh
``python3`` kernel, so nothing is written into the repository.  The kernel inherits this
process's environment, set here to the notebooks' fast setting (``SCRATCHNET_NOTEBOOK_FAST=1``)
on synthetic songs (``SCRATCHNET_DATA`` unset).  A cell that raises fails the test with
nbclient's ``CellExecutionError``, which names the cell and shows its traceback.

The committed notebooks are also checked without running them: executed in order, with their
figures, no embedded audio (no MIR-1K audio may be committed) and a modest size.
"""
import base64
import os
import re
import shutil

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "notebooks")
#: notebook -> how many figures (PNG outputs) it draws
NOTEBOOKS = {"00_drnn_on_one_page.ipynb": 2, "01_stft_and_masks.ipynb": 4, "02_bptt_by_hand.ipynb": 3,
             "02b_truncated_bptt.ipynb": 4, "03_train_a_separator.ipynb": 3, "04_mask_and_objectives.ipynb": 3,
             "05_conv_and_pool_backward.ipynb": 2, "06_what_the_network_learns.ipynb": 4}
CELL_TIMEOUT = 300   # seconds per cell; the fast setting needs a few
MAX_BYTES = 3_000_000   # figures at 110 dpi: the spectrogram panels of notebooks 1, 3 and 6 make ~1.5-2 MB


def run_notebook(name, workdir):
    """Execute a copy of ``notebooks/<name>`` in ``workdir``; return the executed notebook."""
    path = shutil.copy(os.path.join(NOTEBOOK_DIR, name), workdir)
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(workdir)}})
    client.execute()  # raises CellExecutionError at the first cell that fails
    return nb


def outputs(nb):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def n_figures(nb):
    return sum("image/png" in o.get("data", {}) for o in outputs(nb))


@pytest.fixture
def fast_env(monkeypatch):
    """The environment the kernel inherits: fast setting, synthetic data, inline figures."""
    monkeypatch.setenv("SCRATCHNET_NOTEBOOK_FAST", "1")
    monkeypatch.delenv("SCRATCHNET_DATA", raising=False)
    monkeypatch.delenv("MPLBACKEND", raising=False)  # let ipykernel choose its inline backend
    # one BLAS thread: the matrices are small, and threads only fight on a busy machine
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_runs_fast_on_synthetic_data(name, tmp_path, fast_env):
    nb = run_notebook(name, tmp_path)
    assert not [o for o in outputs(nb) if o.output_type == "error"]
    assert n_figures(nb) == NOTEBOOKS[name], f"{name} drew {n_figures(nb)} figures"
    assert sorted(os.listdir(tmp_path)) == [name], f"{name} wrote files: {os.listdir(tmp_path)}"


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("name", ["01_stft_and_masks.ipynb", "03_train_a_separator.ipynb",
                                  "06_what_the_network_learns.ipynb"])
def test_notebook_runs_fast_on_mir1k(name, tmp_path, fast_env, mir1k_dir, monkeypatch):
    monkeypatch.setenv("SCRATCHNET_DATA", mir1k_dir)
    nb = run_notebook(name, tmp_path)
    assert "MIR-1K" in "".join(o.get("text", "") for o in outputs(nb))


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_committed_notebook_is_executed_with_figures_and_no_audio(name):
    path = os.path.join(NOTEBOOK_DIR, name)
    assert os.path.getsize(path) < MAX_BYTES, f"{name} is {os.path.getsize(path):,} bytes"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1)), f"{name}: cells not run top to bottom: {counts}"
    assert not [o for o in outputs(nb) if o.output_type == "error"]
    assert n_figures(nb) == NOTEBOOKS[name]
    for o in outputs(nb):
        for mime, payload in o.get("data", {}).items():
            assert not mime.startswith("audio/"), f"{name} embeds audio ({mime})"
            assert "<audio" not in str(payload), f"{name} embeds an HTML audio player"
            if mime == "image/png":
                assert base64.b64decode(payload)[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_pins_blas_before_numpy_and_has_a_fast_setting(name):
    """One BLAS thread, set before NumPy loads (10x slower unpinned on a busy machine)."""
    nb = nbformat.read(os.path.join(NOTEBOOK_DIR, name), as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert code.index('os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")') < code.index("import numpy")
    assert "SCRATCHNET_NOTEBOOK_FAST" in code


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_figures_are_drawn_at_a_legible_dpi(name):
    """The first cell sets figure.dpi to 100 or more (matplotlib's inline 72 made spectrogram panels
    80 pixels high)."""
    nb = nbformat.read(os.path.join(NOTEBOOK_DIR, name), as_version=4)
    first = next(c.source for c in nb.cells if c.cell_type == "code")
    dpi = re.search(r'"figure\.dpi": (\d+)', first)
    assert dpi and int(dpi.group(1)) >= 100, f"{name}: no figure.dpi >= 100 in the first cell"


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_every_axis_is_labelled(name):
    """Every cell that draws a figure sets x and y labels (a drawing with its axes off, and the
    package's five-panel figure, which labels its own, excepted)."""
    nb = nbformat.read(os.path.join(NOTEBOOK_DIR, name), as_version=4)
    for cell in nb.cells:
        if (cell.cell_type == "code" and "plt.show()" in cell.source and 'axis("off")' not in cell.source
                and "five_panel(" not in cell.source):
            assert "xlabel" in cell.source and "ylabel" in cell.source, f"{name}: a figure without axis labels"
