"""`python -m cnorm bench --plot FILE.png`: each contender's time over the
copy of the same bytes, per case and thread count (matplotlib, imported
only here)."""
import numpy as np

NEEDS = "--plot needs matplotlib: pip install matplotlib (or the package's [plot] extra)"


def available():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def supports(path):
    """Whether matplotlib writes path's format (by its suffix; none: PNG)."""
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else "png"
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return suffix in Figure().canvas.get_supported_filetypes()


def plot_ratios(results, path):
    """Horizontal bars, one group per (case, threads), one bar per contender
    measured (log scale; 1 is the copy)."""
    import matplotlib

    matplotlib.use("Agg")   # a file, no display
    import matplotlib.pyplot as plt

    contenders = [n for n in ("cnorm", "numpy", "torch", "onnxruntime")
                  if any(r.median_us.get(n) is not None for r in results)]
    labels = [f"{r.case.name}, {r.threads} thr" for r in results]
    height = 0.8 / len(contenders)
    fig, ax = plt.subplots(figsize=(10, 0.35 * len(results) * len(contenders) + 1.5))
    rows = np.arange(len(results))
    for i, name in enumerate(contenders):
        ratios = [r.median_us[name] / r.median_us["copy"] if r.median_us.get(name) else np.nan
                  for r in results]
        ax.barh(rows + i * height, ratios, height, label=name)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yticks(rows + 0.4 - height / 2, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("time / np.copyto of the same bytes (log scale; 1 = the copy)")
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
