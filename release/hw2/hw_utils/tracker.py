"""Tracker: per-epoch losses and accuracies, with a live learning-curve plot.

Compatible with the course's original Tracker: the same attributes, the same
`update` order of arguments, and a results.pkl holding exactly the six keys
below. Accuracies are fractions in [0, 1]. The learning rate of each epoch (at its
start) is recorded too when given (`update(..., lr=...)`, as train() does): then the
results also hold `lrs` and the plot has a third panel; files without it still load.

The plot is rendered once as a PNG: written to `png_path` (when set) and shown
in a notebook as an image output (IPython.display.Image), which the saved
notebook and its PDF keep, unlike a live matplotlib figure. Its title names the
run (`title`, which train() fills with the folder and the key settings).
"""
from __future__ import annotations

import io
import os
import time

from .io import atomic_write, load_pickle, save_pickle

RESULT_KEYS = ("train_losses", "test_losses", "train_accs", "test_accs", "epoch", "n_epochs")
OPTIONAL_KEYS = ("lrs",)  # present only when recorded


def _in_notebook() -> bool:
    """True inside a Jupyter or Colab kernel (where a figure can be redrawn live)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class Tracker:
    def __init__(self, n_epochs: int, plot_freq: int = 0):
        self.n_epochs = int(n_epochs)
        self.plot_freq = int(plot_freq)
        self.epoch = 0                   # epochs completed so far
        self.train_losses: list[float] = []
        self.test_losses: list[float] = []
        self.train_accs: list[float] = []  # fractions in [0, 1]
        self.test_accs: list[float] = []
        self.lrs: list[float] = []         # learning rate at the start of each epoch (when recorded)
        self.title = ""                  # the plot's title: the run and its key settings
        self.png_path = None             # where plot() also writes the PNG (None: nowhere)
        self.min_redraw_s = 0.0          # plot() skips redraws closer together than this (unless forced)
        self._last_draw = None           # time.monotonic() of the last redraw
        self._display = None             # IPython display handle of the live plot

    def update(self, train_loss, test_loss, train_acc, test_acc, lr=None) -> None:
        """Record one finished epoch (and its learning rate, when given); redraw the plot
        every `plot_freq` epochs."""
        if lr is not None:
            self.lrs.append(float(lr))
        self.train_losses.append(float(train_loss))
        self.test_losses.append(float(test_loss))
        self.train_accs.append(float(train_acc))
        self.test_accs.append(float(test_acc))
        self.epoch += 1
        if self.plot_freq and self.epoch % self.plot_freq == 0:
            self.plot()

    # --- results.pkl -------------------------------------------------------
    def results(self) -> dict:
        """The six values the course's results.pkl holds, as plain Python data, and `lrs`
        when learning rates were recorded."""
        values = {key: getattr(self, key) for key in RESULT_KEYS + tuple(k for k in OPTIONAL_KEYS if getattr(self, k))}
        return {key: list(v) if isinstance(v, list) else v for key, v in values.items()}

    def save_results(self, path: str | os.PathLike) -> None:
        save_pickle(self.results(), path)

    def load_results(self, path: str | os.PathLike) -> "Tracker":
        """Set the six values from a results.pkl and return the tracker itself.

        Old code that ignores the return value keeps working; new code may write
        `tracker = Tracker(0).load_results(path)`.
        """
        data = load_pickle(path)
        missing = [k for k in RESULT_KEYS if k not in data]
        if missing:
            raise KeyError(f"{path} is not a Tracker results file: it lacks {', '.join(missing)}")
        for key in RESULT_KEYS:
            setattr(self, key, data[key])
        self.lrs = list(data.get("lrs", []))  # older files have none
        return self

    # --- plotting ----------------------------------------------------------
    def figure(self):
        """A matplotlib figure: loss curves and accuracy curves, train vs test, and the
        learning rate per epoch when it was recorded (1x3; else 1x2)."""
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        fig = Figure(figsize=(15 if self.lrs else 10, 3.6), layout="constrained")
        axes = fig.subplots(1, 3 if self.lrs else 2)
        ax_loss, ax_acc = axes[0], axes[1]
        epochs = range(1, len(self.train_losses) + 1)
        if self.lrs:
            ax_lr = axes[2]
            ax_lr.plot(range(1, len(self.lrs) + 1), self.lrs, marker="o", ms=3, color="tab:green")
            ax_lr.set_title("Learning rate (start of epoch)")
            ax_lr.set_xlabel("epoch")
            ax_lr.set_xlim(0.5, max(self.n_epochs, len(self.lrs), 1) + 0.5)
            ax_lr.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax_lr.grid(alpha=0.3)
        for ax, (train, test), title in (
            (ax_loss, (self.train_losses, self.test_losses), "Loss"),
            (ax_acc, (self.train_accs, self.test_accs), "Accuracy"),
        ):
            ax.plot(epochs, train, marker="o", ms=3, label="train")
            ax.plot(epochs, test, marker="o", ms=3, label="test")
            ax.set_title(title)
            ax.set_xlabel("epoch")
            ax.set_xlim(0.5, max(self.n_epochs, len(self.train_losses), 1) + 0.5)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            ax.legend()
        ax_acc.set_ylim(0, 1)
        if self.title:
            fig.suptitle(self.title, fontsize=10)
        return fig

    def png(self) -> bytes:
        """The learning curves as PNG bytes."""
        buf = io.BytesIO()
        self.figure().savefig(buf, format="png", dpi=100)
        return buf.getvalue()

    def save_plot(self, path: str | os.PathLike) -> None:
        """Write the learning curves as a PNG (atomically)."""
        data = self.png()
        with atomic_write(path, "wb") as f:
            f.write(data)

    def plot(self, force: bool = False) -> None:
        """Render the learning curves once: write them to `png_path` (if set) and, in a
        notebook, show them as an image that replaces the previous one in place.
        Redraws closer together than `min_redraw_s` are skipped unless `force`."""
        now = time.monotonic()
        if not force and self._last_draw is not None and now - self._last_draw < self.min_redraw_s:
            return
        notebook = _in_notebook()
        if self.png_path is None and not notebook:
            return
        self._last_draw = now
        data = self.png()
        if self.png_path is not None:
            with atomic_write(self.png_path, "wb") as f:
                f.write(data)
        if notebook:
            from IPython.display import Image, display

            image = Image(data=data, format="png")
            if self._display is None:
                self._display = display(image, display_id=True)
            else:
                self._display.update(image)

    def __repr__(self) -> str:
        last = ""
        if self.epoch:
            last = (f", last: train_loss={self.train_losses[-1]:.4f} test_loss={self.test_losses[-1]:.4f}"
                    f" train_acc={self.train_accs[-1]:.4f} test_acc={self.test_accs[-1]:.4f}")
        return f"Tracker(epoch={self.epoch}/{self.n_epochs}{last})"
