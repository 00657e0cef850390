"""``elman info``: version, backend, compiled module, instruction set, optional extras."""

import importlib.util
import os
import platform

import numpy as np

from elman.cli._common import Output

# The install hints follow the README's install section: extras from a source
# checkout today, from PyPI once elman is published there.
_EXTRAS = (("sklearn", "scikit-learn", "sklearn"), ("matplotlib", "matplotlib", "plot"))


def run_info():
    import elman
    from elman import _backend

    out = Output()
    out.write(f"elman {elman.__version__}\n")
    requested = os.environ.get("ELMAN_BACKEND", "").strip()
    out.write(f"backend in use: {elman.BACKEND} (ELMAN_BACKEND="
              f"{requested if requested else 'unset'})\n")
    try:
        kernels = _backend._import_compiled()
    except ImportError as exc:
        reason = str(exc).split(". ")[0].rstrip(".")
        out.write(f"compiled module: not installed ({reason}); the NumPy twin gives the same "
                  "results, more slowly. To build the module, install a C compiler and "
                  "reinstall elman from its source (pip install . in a checkout)\n")
        out.write("instruction set: n/a (no compiled module)\n")
    else:
        out.write(f"compiled module: present ({kernels.__name__}, "
                  f"{os.path.basename(getattr(kernels, '__file__', '') or '?')})\n")
        level = getattr(kernels, "INSTRUCTION_SET", None)
        isa = os.environ.get("ELMAN_ISA", "").strip()
        out.write(f"instruction set: {level if level else 'baseline'}"
                  + (f" (ELMAN_ISA={isa})" if isa else "") + "\n")
    out.write(f"python {platform.python_version()}, numpy {np.__version__}, "
              f"{platform.system()} {platform.machine()}\n")
    extras, missing = [], []
    for module, package, extra in _EXTRAS:
        found = importlib.util.find_spec(module) is not None
        extras.append(f"{package} {_version_of(package) if found else 'not installed'}")
        if not found:
            missing.append((package, extra))
    out.write("optional: " + ", ".join(extras) + "\n")
    if missing:
        packages = " ".join(package for package, _ in missing)
        names = ",".join(extra for _, extra in missing)
        out.write(f"to add them: pip install {packages}, or the extras from a source "
                  f'checkout: pip install ".[{names}]" (pip install "elman[{names}]" once '
                  "elman is published on PyPI)\n")
    out.flush()
    return 0


def _version_of(package):
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "(version unknown)"
