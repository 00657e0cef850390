"""Pages generated at build time, and a check that every public name is documented.

``.. elman-cli-help::``
    The help of the ``elman`` command and of each subcommand, exactly as
    ``elman --help`` and ``elman SUBCOMMAND --help`` print it, taken from the
    parser itself (``elman.cli.build_parser``).
``.. elman-benchmarks::``
    For each script in ``bench/``: how to run it and what it measures (its
    docstring), then every results file the benchmarks keep in ``bench/``
    (``*.md`` rendered as Markdown, ``*.txt`` / ``*.csv`` as they are).

After reading all pages, every name in the ``__all__`` of ``elman`` and of each
public module (no leading underscore) must be documented somewhere; a missing one
is a warning, which ``sphinx-build -W`` turns into a failed build.
"""

import argparse
import ast
import importlib
import os
import pkgutil
import textwrap

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList
from sphinx.util import logging

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BENCH = os.path.join(ROOT, "bench")
# Help text is wrapped to the terminal's width; the pages use a fixed one.
HELP_COLUMNS = "88"
# Public modules documented by other means than an API page.
DOCUMENTED_ELSEWHERE = {
    "elman.cli": "the command-line page (cli.rst)",
    "elman.rnn": "elman.RNN on the elman page",
}
RESULTS_SUFFIXES = (".md", ".txt", ".csv")


def _parse(directive, lines, source):
    """Parse generated reStructuredText as if it stood in the page."""
    container = nodes.container()
    directive.state.nested_parse(StringList(lines, source), directive.content_offset,
                                 container, match_titles=True)
    return container.children


def _literal(text):
    return ["::", ""] + ["    " + line if line else "" for line in text.splitlines()] + [""]


def _heading(title, char):
    return [title, char * len(title), ""]


def _subcommands(parser):
    for action in parser._actions:  # argparse keeps subcommands only here
        if isinstance(action, argparse._SubParsersAction):
            seen, result = set(), []
            for name, sub in action.choices.items():
                if id(sub) not in seen:      # aliases map to the same parser
                    seen.add(id(sub))
                    result.append((name, sub))
            return result
    return []


class CliHelp(Directive):
    has_content = False

    def run(self):
        from elman.cli import build_parser

        previous = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = HELP_COLUMNS
        try:
            parser = build_parser()
            lines = _heading(f"{parser.prog} --help", "-") + _literal(parser.format_help())
            for name, sub in _subcommands(parser):
                lines += _heading(f"{parser.prog} {name} --help", "-")
                lines += _literal(sub.format_help())
        finally:
            if previous is None:
                os.environ.pop("COLUMNS", None)
            else:
                os.environ["COLUMNS"] = previous
        return _parse(self, lines, "<elman.cli.build_parser()>")


def _bench_scripts():
    names = sorted(f for f in os.listdir(BENCH)
                   if f.startswith("bench_") and f.endswith(".py"))
    for name in names:
        with open(os.path.join(BENCH, name), encoding="utf-8") as f:
            doc = ast.get_docstring(ast.parse(f.read())) or ""
        yield name, doc


def _results_files():
    found = []
    for folder, _, files in os.walk(BENCH):
        if "__pycache__" in folder:
            continue
        for f in files:
            if f.endswith(RESULTS_SUFFIXES):
                found.append(os.path.relpath(os.path.join(folder, f), ROOT))
    return sorted(found)


class Benchmarks(Directive):
    has_content = False

    def run(self):
        env = self.state.document.settings.env
        lines = []
        results = _results_files()
        if results:
            lines += _heading("Results", "-")
            for path in results:
                env.note_dependency(os.path.join(ROOT, path))
                lines += _heading(f"``{path}``", "~")
                if path.endswith(".md"):
                    lines += [f".. include:: /{os.path.relpath(os.path.join(ROOT, path), env.srcdir)}",
                              "   :parser: myst_parser.sphinx_", ""]
                else:
                    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
                        lines += _literal(f.read())
        lines += _heading("The scripts", "-")
        for name, doc in _bench_scripts():
            env.note_dependency(os.path.join(BENCH, name))
            summary, _, rest = doc.partition("\n")
            lines += _heading(f"``bench/{name}``", "~")
            lines += [summary.strip(), ""] + _literal(textwrap.dedent(rest).strip("\n"))
        return _parse(self, lines, "<bench/>")


def _public_modules():
    import elman

    names = ["elman"]
    for info in pkgutil.iter_modules(elman.__path__, "elman."):
        if not info.name.rsplit(".", 1)[1].startswith("_"):
            names.append(info.name)
    return names


def check_everything_documented(app, env):
    """Warn for each public module and exported name with no documentation."""
    logger = logging.getLogger(__name__)
    documented = set(env.get_domain("py").objects)
    for module_name in _public_modules():
        if module_name in DOCUMENTED_ELSEWHERE:
            continue
        if module_name not in documented:
            logger.warning(f"public module {module_name} has no API page: add one "
                           f"under docs/api/ (automodule)")
            continue
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            candidates = {f"{module_name}.{name}"}
            home = getattr(obj, "__module__", None)
            if isinstance(home, str):
                candidates.add(f"{home}.{name}")
            if getattr(obj, "__name__", None) and isinstance(home, str):
                candidates.add(f"{home}.{obj.__name__}")
            if not candidates & documented:
                logger.warning(f"{module_name}.{name} is exported (__all__) but documented "
                               f"nowhere")


def skip_foreign_members(app, what, name, obj, skip, options):
    """Leave out class members that another library generated or defined.

    scikit-learn adds ``set_*_request`` methods to every estimator class it sees
    (metadata routing); they are scikit-learn's API, documented there.
    """
    if what in ("class", "exception"):
        home = getattr(obj, "__module__", None)
        if not isinstance(home, str):
            home = getattr(getattr(obj, "fget", None), "__module__", None)
        if isinstance(home, str) and home.split(".")[0] != "elman":
            return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", skip_foreign_members)
    app.add_directive("elman-cli-help", CliHelp)
    app.add_directive("elman-benchmarks", Benchmarks)
    app.connect("env-check-consistency", check_everything_documented)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
