"""Internals of :class:`elman.Forecaster`: transforms, the linear-plus-RNN pipeline,
the automatic search, conformal intervals and backtests. Only
:mod:`elman.forecaster` imports from here."""
