"""Sphinx configuration of elman's documentation.

Build (what CI runs, warnings as errors):

    pip install ".[docs]"
    sphinx-build -W --keep-going -b html docs docs/_build/html

The guide is README.md itself, included through MyST; the API pages are autodoc
over the installed package with numpydoc; the command line's help and the
benchmark pages are generated at build time (``_ext/elman_docs.py``), so none of
them can drift from what they describe.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "_ext"))

import elman  # noqa: E402  (the installed package is what gets documented)

project = "elman"
author = "the elman developers"
copyright = "the elman developers"
release = elman.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "numpydoc",
    "myst_parser",
    "elman_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = [
    "_build",
]

# autodoc: members in source order; only what a module's __all__ exports.
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"          # the numpydoc sections carry the types and shapes
# Members are documented by autodoc's :members:; numpydoc's own member tables would
# list every attribute and method a second time, as autosummary stubs.
numpydoc_show_class_members = False
numpydoc_xref_param_type = False

# README.md's headings become link targets, so its own section links resolve.
myst_heading_anchors = 3

html_theme = "alabaster"
html_title = f"elman {release}"
