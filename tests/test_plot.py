"""The figure of `elman fit --plot`: panels, scales, labels, notes, and no warnings."""

import io
import warnings

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from elman.cli._data import Table  # noqa: E402
from elman.cli._plot import ZOOM_ROWS, build_figure  # noqa: E402
from elman.datasets import Dataset  # noqa: E402
from elman.training import History  # noqa: E402


def _history(loss, val_loss=(), best_epoch=None):
    history = History()
    history.loss.extend(loss)
    history.val_loss.extend(val_loss)
    history.best_epoch = best_epoch
    return history


def _setup(n_test, dates=None, interval=False):
    n = 4 * n_test
    rng = np.random.default_rng(0)
    y = np.sin(np.arange(n) / 5) + rng.normal(0, 0.1, n)
    table = Table(Dataset(y[:, None], ("y",), dates), "series.csv", bundled=False)
    rows = np.arange(n - n_test, n)
    methods = {"elman Forecaster": {"prediction": y[rows] + 0.05, "mse": 0.01, "mae": 0.1},
               "persistence (last known y)": {"prediction": y[rows - 1], "mse": 0.05,
                                              "mae": 0.2}}
    results = {"rows": rows, "actual": y[rows], "methods": methods,
               "labels": tuple(methods), "persistence_label": "persistence (last known y)",
               "interval": 0.9 if interval else None,
               "lower": y[rows] - 0.2 if interval else None,
               "upper": y[rows] + 0.2 if interval else None}
    return results, table


def _draw(figure):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's warnings fail the test
        figure.savefig(io.BytesIO(), format="png")


def test_short_test_period_is_drawn_once_with_labelled_axes():
    results, table = _setup(45)
    figure = build_figure(results, [_history([1.0, 0.5, 0.4], [1.1, 0.6, 0.5])], table, "y",
                          False)
    _draw(figure)
    whole, losses = figure.axes
    assert whole.get_xlabel() == "row number in the file (from 0)"
    assert whole.get_ylabel() == "y"
    assert losses.get_yscale() == "log" and losses.get_xlabel() == "epoch"
    labels = [line.get_label() for line in whole.get_lines()]
    assert labels == ["actual", "elman", "persistence"]


def test_long_test_period_adds_a_close_up_of_its_last_rows():
    results, table = _setup(ZOOM_ROWS + 1, interval=True)
    figure = build_figure(results, _history([1.0, 0.5]), table, "y", False)
    _draw(figure)
    whole, zoom, losses = figure.axes
    assert zoom.get_title(loc="left") == f"Last {ZOOM_ROWS} rows of the test period"
    assert len(zoom.get_lines()[0].get_xdata()) == ZOOM_ROWS
    assert "90% interval" in [c.get_label() for c in whole.collections]


@pytest.mark.parametrize("dates", [
    np.array(["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-04"] * 1, dtype="datetime64[D]"),
    np.arange(np.datetime64("1990-01", "M"), np.datetime64("1990-01", "M") + 40),
    np.arange(np.datetime64("1700", "Y"), np.datetime64("1700", "Y") + 400),
])
def test_dated_axes_draw_without_warnings(dates):
    n_test = len(dates) // 4
    results, table = _setup(n_test, dates=dates[:4 * n_test])
    figure = build_figure(results, _history([0.3, 0.2, 0.1], [0.4, 0.3, 0.2]), table, "y",
                          False)
    _draw(figure)
    assert figure.axes[0].get_xlabel() == "date"


def _note(losses):
    return [t.get_text() for t in losses.texts]


def test_off_scale_note_names_the_curve_that_is_cut():
    results, table = _setup(30)
    # The validation loss of epoch 1 dwarfs every later epoch; the training loss does not.
    history = _history([0.5, 0.3, 0.2, 0.2], [90.0, 0.4, 0.3, 0.25], best_epoch=3)
    figure = build_figure(results, history, table, "y", False)
    _draw(figure)
    losses = figure.axes[-1]
    assert _note(losses) == ["epoch 1 off scale: validation 90"]
    assert losses.get_ylim()[1] < 90.0
    # Both curves stay visible: every later point lies inside the axis.
    low, high = losses.get_ylim()
    for line in losses.get_lines()[:2]:
        values = np.asarray(line.get_ydata())[1:]
        assert (values >= low).all() and (values <= high).all()
    # Nothing is cut when the first epoch is within reach on the log scale.
    figure = build_figure(results, _history([5.0, 0.3, 0.2], [4.0, 0.4, 0.3]), table, "y",
                          False)
    assert _note(figure.axes[-1]) == []


def test_ensemble_losses_share_one_legend_entry_per_kind():
    results, table = _setup(30)
    histories = [_history([1.0, 0.5, 0.4]), _history([0.9, 0.6, 0.3]), _history([0.8, 0.7])]
    figure = build_figure(results, histories, table, "y", False)
    _draw(figure)
    losses = figure.axes[-1]
    assert [t.get_text() for t in losses.get_legend().get_texts()] == ["train"]
    assert losses.get_title(loc="left") == "Loss per epoch of the 3 RNNs (log scale)"


# ------------------------------------------------------------- gradient-flow panel
def _flow(num_layers=1, members=1, steps=12):
    import elman
    from elman.cli._plot import gradient_flow_panel

    rng = np.random.default_rng(1)
    X = rng.normal(size=(20, steps, 2))
    Y = rng.normal(size=(20, steps, 1))
    runs = [(f"RNN {k + 1}" if members > 1 else "",
             elman.RNN(2, 6, 1, num_layers=num_layers, seed=k), X, Y) for k in range(members)]
    return gradient_flow_panel(runs, "validation"), runs


def test_gradient_flow_panel_draws_each_layer_on_a_log_scale():
    from elman.diagnostics import gradient_flow

    flow, runs = _flow(num_layers=2)
    assert [label for label, _ in flow["curves"]] == ["layer 1", "layer 2"]
    np.testing.assert_array_equal(np.array([norms for _, norms in flow["curves"]]),
                                  gradient_flow(*runs[0][1:]))
    results, table = _setup(45)
    figure = build_figure(results, [_history([1.0, 0.5])], table, "y", False, flow)
    _draw(figure)
    whole, losses, gradients = figure.axes
    assert gradients.get_yscale() == "log"
    assert gradients.get_title(loc="left") == "Gradient flow (log scale)"
    assert gradients.get_xlabel() == "step in the window (1 = oldest)"
    assert "validation windows" in gradients.get_ylabel()
    lines = gradients.get_lines()
    assert [line.get_label() for line in lines] == ["layer 1", "layer 2"]
    np.testing.assert_array_equal(lines[0].get_xdata(), np.arange(1, 13))
    np.testing.assert_allclose(lines[1].get_ydata(), flow["curves"][1][1])
    assert gradients.get_legend() is not None


def test_gradient_flow_panel_of_one_rnn_notes_the_first_to_last_ratio():
    flow, _ = _flow()
    assert [label for label, _ in flow["curves"]] == ["RNN"]
    norms = flow["curves"][0][1]
    results, table = _setup(200)   # with the close-up: the panel joins the bottom row
    figure = build_figure(results, [_history([1.0, 0.5])], table, "y", False, flow)
    _draw(figure)
    whole, zoom, losses, gradients = figure.axes
    assert gradients.get_legend() is None
    notes = [text.get_text() for text in gradients.texts]
    assert notes == [f"first step / last step: {norms[0] / norms[-1]:.2g}"]


def test_gradient_flow_panel_keeps_twelve_decades_of_a_vanished_gradient():
    norms = np.logspace(-30, 0, 31)
    norms[0] = 0.0   # nothing reached the first step: left out, not drawn at 0
    flow = {"curves": [("RNN 1", norms), ("RNN 2", norms * 2)], "part": "training"}
    results, table = _setup(45)
    figure = build_figure(results, [_history([1.0, 0.5])], table, "y", False, flow)
    _draw(figure)
    gradients = figure.axes[-1]
    bottom, top = gradients.get_ylim()
    assert bottom == pytest.approx(2e-12) and top == pytest.approx(4.0)
    assert np.isnan(gradients.get_lines()[0].get_ydata()[0])
    assert "training windows" in gradients.get_ylabel()
