"""The HW4 notebook, run from top to bottom on fake CIFAR-10 files, keeps its training
record (a PNG learning curve and a text line per epoch), and its PDF shows both."""
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
needs_chromium = pytest.mark.skipif(not shutil.which("chromium") or not shutil.which("pdftotext"),
                                    reason="needs Debian's chromium and poppler-utils (.ci/run installs them)")

# CIFAR-10 cannot be downloaded here: torchvision reads these files as it reads the real ones,
# and only its checksum test is skipped (the files are not the published ones).
SKIP_CHECKSUM = ("datasets.CIFAR10._check_integrity = lambda self: True  # fake CIFAR-10 files (test only)\n"
                 "datasets.cifar.check_integrity = lambda *args, **kwargs: True")
SMALL_EXPERIMENT = '''model_config = dict(base_channels=4, expands=[1, 2], activation="relu", batchnorm=True, residual=True)
train_config = dict(optim_name="Adam", optim_config=dict(lr=1e-3), lr_scheduler_name=None, lr_scheduler_config={},
                    n_epochs=2, batch_size=16)
loss_fn = nn.CrossEntropyLoss()'''


def write_fake_cifar10(root: Path, per_batch: int = 20, n_test: int = 40) -> None:
    """CIFAR-10 in its own format (cifar-10-batches-py: pickled dicts of uint8 rows)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else per_batch
        batch = {"data": rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8),
                 "labels": rng.integers(0, 10, size=n).tolist()}
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))


def run_hw4_notebook(folder: Path) -> nbformat.NotebookNode:
    """A student's folder (release/hw4 with the reference notebook, small configs), run top to bottom."""
    from nbclient import NotebookClient

    shutil.copytree(REPO / "release" / "hw4", folder, ignore=shutil.ignore_patterns("HW4.ipynb", "__pycache__"))
    write_fake_cifar10(folder / "data")
    nb = nbformat.read(REPO / "source" / "hw4" / "HW4.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "experiment":
            cell.source = re.sub(r"### BEGIN SOLUTION.*### END SOLUTION", SMALL_EXPERIMENT, cell.source, flags=re.S)
    nb.cells.insert(2, nbformat.v4.new_code_cell(SKIP_CHECKSUM))
    nbformat.write(nb, folder / "HW4.ipynb")  # the submission cell zips the saved notebook
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    nb.cells.pop(2)
    nbformat.write(nb, folder / "HW4.ipynb")
    return nb


def experiment_outputs(nb):
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "experiment")
    return cell.outputs


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("student") / "hw4"
    return folder, run_hw4_notebook(folder)


@pytest.mark.slow
def test_the_saved_notebook_keeps_a_png_learning_curve_and_a_text_epoch_log(executed):
    folder, nb = executed
    outputs = experiment_outputs(nb)
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1                                    # one image, redrawn in place
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert re.search(r"epoch 1/2: train loss \d\.\d{4} acc \d\.\d{4}, test loss \d\.\d{4} acc", text)
    assert "epoch 2/2: train loss" in text
    assert "application/vnd.jupyter.widget-view+json" not in str(outputs)   # no widget that a PDF would lose
    assert "<Figure size" not in str(outputs)
    png = (folder / "results" / "00" / "learning_curves.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


@pytest.mark.slow
@needs_chromium
def test_the_pdf_shows_the_learning_curve_and_the_epoch_log(executed):
    folder, _ = executed
    proc = subprocess.run([sys.executable, "-m", "hw_utils.submit"], cwd=folder, capture_output=True, text=True,
                          timeout=900, env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    assert (folder / "HW4.pdf").is_file(), proc.stdout + proc.stderr
    text = subprocess.run(["pdftotext", "-layout", str(folder / "HW4.pdf"), "-"], capture_output=True, text=True).stdout
    assert "epoch 1/2: train loss" in text and "epoch 2/2: train loss" in text
    listing = subprocess.run(["pdfimages", "-list", str(folder / "HW4.pdf")], capture_output=True, text=True).stdout
    sizes = [tuple(map(int, line.split()[3:5])) for line in listing.splitlines()[2:] if line.split()[2] == "image"]
    assert (1500, 360) in sizes, listing      # the 15 x 3.6 inch curves (loss, accuracy, learning rate) at 100 dpi


def test_pdf_table_headers_break_only_between_words_and_wide_tables_are_scaled():
    from hw_utils.pdf import PRINT_CSS, notebook_html

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("table")])
    nb.cells[0].outputs = [nbformat.v4.new_output("execute_result", execution_count=1, data={
        "text/html": "<table><thead><tr><th>lr_scheduler_config</th><th>test_acc</th></tr></thead>"
                     "<tbody><tr><td>{}</td><td>0.9</td></tr></tbody></table>", "text/plain": "table"})]
    html = notebook_html(nb)
    assert "<th>lr_<wbr>scheduler_<wbr>config</th>" in html and "<th>test_<wbr>acc</th>" in html
    assert "th { overflow-wrap: normal; word-break: normal; }" in PRINT_CSS   # never inside a word
    assert "table.style.zoom" in PRINT_CSS                                    # too wide: scaled to the page
