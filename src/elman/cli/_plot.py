"""``elman fit --plot``: the test period, its last rows up close, the loss curves, and
the gradient flow of the final model."""

import importlib
import importlib.util
import math
import os

import numpy as np

from elman.cli._common import PLOT_HINT, CLIError

# The close-up panel shows at most this many of the last test rows; a test period no
# longer than this is drawn once, whole.
ZOOM_ROWS = 120
# The first epoch is cut off (and noted) when it is this many times the later maximum.
OFF_SCALE_FACTOR = 30.0


def check_plot_path(path):
    """CLIError unless matplotlib imports and can write ``path``'s format (by extension)."""
    if importlib.util.find_spec("matplotlib") is None:
        raise CLIError(f"--plot needs matplotlib, which is not installed: {PLOT_HINT}")
    try:
        importlib.import_module("matplotlib")
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError as exc:
        raise CLIError(f"--plot needs matplotlib, which failed to import ({exc}): "
                       f"{PLOT_HINT}") from None
    formats = FigureCanvasBase.get_supported_filetypes()
    extension = os.path.splitext(path)[1].lstrip(".").lower()
    if extension not in formats:
        found = (f"matplotlib cannot write .{extension} files" if extension
                 else "the name has no extension to tell the format")
        raise CLIError(f"--plot {path}: {found}; end the name with one of "
                       f"{', '.join('.' + e for e in sorted(formats))} (e.g. out.png)")


def gradient_flow_panel(runs, part):
    """What the gradient-flow panel draws: ||dL/dh_t|| at every step of the windows.

    ``runs`` is a list of (label, model, X, Y): each final RNN with windows it can be
    scored on; ``part`` names those windows ("validation", say). Returns a dict with
    ``curves``, a list of (label, norms of shape (time,)), one per RNN and layer, and
    ``part``.
    """
    from elman.diagnostics import gradient_flow

    curves = []
    for label, model, X, Y in runs:
        norms = gradient_flow(model, X, Y)
        for layer, row in enumerate(norms):
            name = label if norms.shape[0] == 1 else f"{label}, layer {layer + 1}".lstrip(", ")
            curves.append((name or "RNN", row))
    return {"curves": curves, "part": part}


def plot(path, results, history, table, target, weather, flow=None):
    """Draw the figure (see :func:`build_figure`) and save it to ``path``."""
    figure = build_figure(results, history, table, target, weather, flow)
    try:
        figure.savefig(path)
    except OSError as exc:
        raise CLIError(f"--plot {path}: cannot write it ({exc.strerror or exc})") from None
    except ValueError as exc:  # the format was checked before training; a backend's refusal
        raise CLIError(f"--plot {path}: {exc}") from None


def build_figure(results, history, table, target, weather, flow=None):
    """A matplotlib Figure: the test period (and its last rows when long), the losses,
    and with ``flow`` (see :func:`gradient_flow_panel`) the gradient flow."""
    # The object-oriented API with the Agg canvas: no pyplot, no GUI, no global state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = results["rows"]
    dated = table.dates is not None
    x = table.dates[rows] if dated else rows
    x_label = "date" if dated else "row number in the file (from 0)"
    actual = results["actual"]
    labels = results["labels"]
    rnn = results["methods"][labels[0]]["prediction"]
    model_name = "elman" if labels[0].startswith("elman Forecaster") else "RNN"
    persistence = results["methods"][results["persistence_label"]]["prediction"]
    unit = " (°F)" if weather else ""
    name = "tomorrow's tmax" if weather else target
    zoomed = len(rows) > ZOOM_ROWS

    # The gradient-flow panel, when there is one, takes a column of its own.
    widths = (1.6, 1) if flow is None else (1.6, 1, 1)
    figure = Figure(figsize=(11 if flow is None else 14.5, 7.5 if zoomed else 4.2), dpi=110,
                    layout="constrained")
    FigureCanvasAgg(figure)
    if zoomed:
        grid = figure.add_gridspec(2, len(widths), height_ratios=(1, 1), width_ratios=widths)
        whole = figure.add_subplot(grid[0, :])
        zoom = figure.add_subplot(grid[1, 0])
        losses = figure.add_subplot(grid[1, 1])
    else:
        grid = figure.add_gridspec(1, len(widths), width_ratios=widths)
        whole = figure.add_subplot(grid[0, 0])
        zoom = None
        losses = figure.add_subplot(grid[0, 1])
    gradients = None if flow is None else figure.add_subplot(grid[-1, 2])
    actual_style = {"color": "0.25", "linewidth": 0.9}
    rnn_style = {"color": "tab:orange", "linewidth": 0.9}
    persistence_style = {"color": "tab:blue", "linewidth": 0.9, "linestyle": "--",
                         "alpha": 0.7}

    whole.plot(x, actual, label="actual", alpha=0.8,
               **({**actual_style, "marker": ".", "markersize": 4} if not zoomed
                  else actual_style))
    whole.plot(x, rnn, label=model_name, alpha=0.9, **rnn_style)
    band = results.get("lower") is not None
    if band:
        level = results["interval"]
        whole.fill_between(x, results["lower"], results["upper"], color="tab:orange",
                           alpha=0.18, linewidth=0, label=f"{level:.0%} interval")
    if not zoomed:
        whole.plot(x, persistence, label="persistence", **persistence_style)
    whole.set_title(f"Test period ({len(rows)} {'days' if weather else 'rows'}): {name}, "
                    "actual and predicted", loc="left")
    scores = ", ".join(f"{_short(label).replace('elman Forecaster', 'elman')} "
                       f"{results['methods'][label]['mse']:.3g}" for label in labels)
    source = "bundled weather data" if table.bundled else os.path.basename(table.source)
    figure.suptitle(f"elman fit on {source}\ntest MSE{' (°F²)' if weather else ''}: "
                    f"{scores}", fontsize="medium", x=0.01, ha="left")
    whole.set_ylabel(f"{target}{unit}")
    whole.set_xlabel(x_label)
    whole.legend(loc="best", ncols=3 if not zoomed else 2, frameon=False, fontsize="small")
    whole.margins(x=0.01)

    axes_with_x = [whole]
    if zoomed:
        last = ZOOM_ROWS
        zoom.plot(x[-last:], actual[-last:], marker=".", markersize=4, label="actual",
                  **actual_style)
        zoom.plot(x[-last:], rnn[-last:], label=model_name, **{**rnn_style, "linewidth": 1.4})
        if band:
            zoom.fill_between(x[-last:], results["lower"][-last:], results["upper"][-last:],
                              color="tab:orange", alpha=0.18, linewidth=0)
        zoom.plot(x[-last:], persistence[-last:], label="persistence", **persistence_style)
        zoom.set_title(f"Last {last} {'days' if weather else 'rows'} of the test period",
                       loc="left")
        zoom.set_ylabel(f"{target}{unit}")
        zoom.set_xlabel(x_label)
        zoom.legend(loc="best", frameon=False, fontsize="small")
        axes_with_x.append(zoom)
    if dated:
        import matplotlib.dates as mdates

        for axes in axes_with_x:
            locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
            axes.xaxis.set_major_locator(locator)
            axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    else:
        from matplotlib.ticker import MaxNLocator

        for axes in axes_with_x:
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))

    _plot_losses(losses, history)
    if gradients is not None:
        _plot_gradient_flow(gradients, flow)
    for axes in (whole, zoom, losses, gradients):
        if axes is not None:
            axes.grid(True, alpha=0.3, linewidth=0.6)
            axes.spines[["top", "right"]].set_visible(False)
    return figure


def _short(label):
    return label.split(" (")[0].split(" on ")[0]


def _plot_losses(losses, history):
    """Training and validation loss per epoch, on a log scale so both stay readable."""
    from matplotlib.ticker import MaxNLocator

    # One History (a single RNN) or a list of them (the forecaster's ensemble).
    histories = history if isinstance(history, (list, tuple)) else [history]
    histories = [h for h in histories if h is not None and h.epochs]
    tiny = np.finfo(np.float64).tiny
    curves = []
    for k, item in enumerate(histories):
        epochs = np.arange(1, item.epochs + 1)
        suffix = f" (RNN {k + 1})" if len(histories) > 1 else ""
        curves.append(("train" + suffix, epochs,
                       np.maximum(np.asarray(item.loss, dtype=float), tiny), "tab:blue"))
        if item.val_loss:
            curves.append(("validation" + suffix, epochs,
                           np.maximum(np.asarray(item.val_loss, dtype=float), tiny),
                           "tab:purple"))
    seen = set()
    markers = max(len(epochs) for _, epochs, _, _ in curves) < 60 if curves else False
    for label, epochs, values, color in curves:
        kind = label.split(" (")[0]
        losses.plot(epochs, values, marker="o" if markers else None, markersize=3,
                    color=color, alpha=1.0 if len(histories) == 1 else 0.6,
                    label=None if kind in seen else kind)  # one legend entry per kind
        seen.add(kind)
    if not curves:
        losses.text(0.5, 0.5, "no RNN was trained", ha="center", va="center",
                    transform=losses.transAxes)
        losses.set_axis_off()
        return
    losses.set_yscale("log")
    # On a log scale the first epoch rarely hides the rest; when it is far above every
    # later epoch, cut it off and say which curve it was.
    longest = max(len(epochs) for _, epochs, _, _ in curves)
    if longest >= 3:
        later = np.concatenate([values[1:] for _, _, values, _ in curves])
        low, high = float(later.min()), float(later.max())
        top = high * 2.0
        cut = [(label, float(values[0]), color) for label, _, values, color in curves
               if values[0] > OFF_SCALE_FACTOR * high]
        if cut:
            first = [float(values[0]) for _, _, values, _ in curves]
            losses.set_ylim(min(low, *[v for v in first if v <= top]) / 1.5, top)
            text = "epoch 1 off scale: " + ", ".join(f"{label} {value:.3g}"
                                                     for label, value, _ in cut)
            losses.annotate(text, xy=(0.02, 0.97), xycoords="axes fraction", fontsize="small",
                            color=cut[0][2], ha="left", va="top")
    best_epoch = histories[0].best_epoch if len(histories) == 1 else None
    if best_epoch is not None:
        losses.axvline(best_epoch + 1, color="0.5", linestyle=":", linewidth=1,
                       label=f"kept (epoch {best_epoch + 1})")
    if len(histories) > 1:
        losses.set_title(f"Loss per epoch of the {len(histories)} RNNs (log scale)",
                         loc="left")
        losses.set_ylabel("mean squared error (scaled residual)")
    else:
        losses.set_title("Loss per epoch (log scale)", loc="left")
        losses.set_ylabel("mean squared error (scaled target)")
    losses.set_xlabel("epoch")
    _plain_log_ticks(losses)
    losses.legend(frameon=False, fontsize="small", loc="upper right")
    losses.set_xlim(0.5, longest + 0.5)
    losses.xaxis.set_major_locator(MaxNLocator(integer=True))


def _plain_log_ticks(axes):
    """Plain numbers (0.3, not 3x10^-1) on the major and minor ticks of a log y axis,
    with enough digits to tell the ticks of a narrow range apart."""
    from matplotlib.ticker import FuncFormatter

    bottom, top = axes.get_ylim()
    digits = 2 if top / bottom > 1.5 else 3 if top / bottom > 1.05 else 4
    plain = FuncFormatter(lambda value, _: f"{value:.{digits}g}")
    axes.yaxis.set_major_formatter(plain)
    # Within one decade every minor tick is labelled; over a wider range only those at
    # 2 and 5 times a power of ten, so that the labels do not crowd into each other.
    def sparse(value, _):
        mantissa = value / 10 ** math.floor(math.log10(value)) if value > 0 else 0
        return plain(value, _) if round(mantissa, 6) in (2.0, 5.0) else ""

    axes.yaxis.set_minor_formatter(plain if top / bottom < 10 else FuncFormatter(sparse))


def _plot_gradient_flow(axes, flow):
    """||dL/dh_t|| per step of the window, one line per RNN and layer, log scale."""
    curves = [(label, np.asarray(norms, dtype=float)) for label, norms in flow["curves"]]
    positive = [norms[norms > 0] for _, norms in curves]
    if not curves or not any(values.size for values in positive):
        axes.text(0.5, 0.5, "no gradient reached the states", ha="center", va="center",
                  transform=axes.transAxes)
        axes.set_axis_off()
        return
    many = len(curves) > 1
    colors = ["tab:green", "tab:red", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]
    for k, (label, norms) in enumerate(curves):
        steps = np.arange(1, norms.shape[0] + 1)
        shown = np.where(norms > 0, norms, np.nan)  # a zero has no place on a log axis
        axes.plot(steps, shown, marker="o" if norms.shape[0] <= 40 else None, markersize=3,
                  color=colors[k % len(colors)], alpha=0.8 if many else 1.0, label=label)
    axes.set_yscale("log")
    axes.set_title("Gradient flow (log scale)", loc="left")
    axes.set_xlabel("step in the window (1 = oldest)")
    axes.set_ylabel(f"norm of dL/dh_t, {flow['part']} windows")
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    longest = max(norms.shape[0] for _, norms in curves)
    axes.set_xlim(0.5, longest + 0.5)
    # One curve: how the first step's gradient compares with the last one's, the
    # vanishing (or exploding) factor over the window. Several: the legend says which.
    first = curves[0][1]
    if not many and first[0] > 0 and first[-1] > 0:
        axes.annotate(f"first step / last step: {first[0] / first[-1]:.2g}",
                      xy=(0.02, 0.03), xycoords="axes fraction", fontsize="small",
                      ha="left", va="bottom", color="0.3")
    low = min(values.min() for values in positive if values.size)
    high = max(values.max() for values in positive if values.size)
    if high / low > 1e12:  # a vanished gradient: show 12 decades below the largest
        axes.set_ylim(high * 1e-12, high * 2)
    _plain_log_ticks(axes)
    if many:
        axes.legend(frameon=False, fontsize="small", loc="best",
                    ncols=2 if len(curves) > 4 else 1)
