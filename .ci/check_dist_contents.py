"""Check what the sdist and the wheel hold: every kind of file they must carry, and
no kind they must not.

    python .ci/check_dist_contents.py --source-root . --sdist dist/elman-X.tar.gz \
        [--wheel dist/elman-X-....whl]

sdist: the Cython sources, setup.py, pyproject.toml, README.md, LICENSE, tests/,
bench/ and the bundled data set; no generated C, no built objects. It must also
hold every file the source tree has under src/, tests/ and bench/ (taken from git,
tracked or untracked-but-not-ignored), because the wheels are built from it.

wheel: the compiled module (and, on x86-64, its AVX2 variant when the sources
have one), the whole Python package, py.typed and the data set; no .pyx, no C, no
tests. Compiled modules in ELF format (Linux) must be stripped: no symbol table,
no debug sections.

Standard library only, so that it runs anywhere (the workflow's sdist job too).
Exits 1 with one line per problem.
"""

import argparse
import email.parser
import fnmatch
import os
import re
import struct
import subprocess
import sys
import tarfile
import zipfile

# Kinds of file that are build products or generated code: never in either archive.
GENERATED = [
    "*.c", "*.cpp", "*.h", "*.html", "*.o", "*.obj", "*.a", "*.lib",
    "*.pyc", "*.pyo", "*/__pycache__/*", "*.whl",
]
COMPILED = ["*.so", "*.pyd", "*.dylib", "*.dll"]
DATASET = "src/elman/datasets/*.csv.gz"
# Hand-written C headers the .pyx include: sources, in the sdist (never in a wheel).
KERNEL_HEADERS = "src/elman/*.h"
# Hand-written C of the benchmarks (bench_tanh.py compiles it): sources too.
BENCH_C = ["bench/*.c", "bench/*.h"]


def matches(path, patterns):
    return any(fnmatch.fnmatch(path, p) for p in patterns)


def source_files(root):
    """Files of the source tree as git sees them (tracked + untracked, not ignored)."""
    try:
        out = subprocess.run(
            ["git", "-C", root, "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            check=True, capture_output=True, text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    files = [f for f in out.split("\0") if f]
    # git ls-files --cached also lists files deleted from the work tree.
    return [f for f in files if os.path.isfile(os.path.join(root, f))]


def read_version(root):
    text = open(os.path.join(root, "src", "elman", "_version.py"), encoding="utf-8").read()
    return re.search(r'__version__\s*=\s*"([^"]+)"', text).group(1)


def check_sdist(path, root, problems):
    with tarfile.open(path) as tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) != 1:
        problems.append(f"sdist: expected one top directory, found {sorted(tops)}")
        return []
    files = sorted(n.split("/", 1)[1] for n in names if "/" in n)

    required = {
        "setup.py": ["setup.py"],
        "pyproject.toml": ["pyproject.toml"],
        "README.md": ["README.md"],
        "LICENSE": ["LICENSE"],
        "PKG-INFO": ["PKG-INFO"],
        "Cython sources (.pyx)": ["src/elman/*.pyx"],
        "NumPy twin": ["src/elman/_kernels_numpy.py"],
        "the one version file": ["src/elman/_version.py"],
        "the PEP 561 marker": ["src/elman/py.typed"],
        "the data set": [DATASET],
        "tests/ (test_*.py)": ["tests/test_*.py", "tests/*/test_*.py"],
        "bench/ (*.py)": ["bench/*.py"],
    }
    for kind, patterns in required.items():
        if not any(matches(f, patterns) for f in files):
            problems.append(f"sdist: missing {kind}")

    allowed = [
        "PKG-INFO", "setup.py", "setup.cfg", "pyproject.toml", "README.md", "LICENSE",
        "MANIFEST.in",
        "src/elman.egg-info/*",  # setuptools always writes its metadata here
        "src/elman/*.py", "src/elman/*/*.py", "src/elman/*.pyi", "src/elman/py.typed",
        "src/elman/*.pyx", "src/elman/*.pxd", "src/elman/*.pxi",
        KERNEL_HEADERS,
        DATASET,
        "tests/*", "bench/*",
    ]
    for f in files:
        if matches(f, GENERATED + COMPILED) and not matches(f, [KERNEL_HEADERS, *BENCH_C]):
            problems.append(f"sdist: generated or built file {f}")
        elif not matches(f, allowed):
            problems.append(f"sdist: unexpected file {f}")

    # A file the source tree has but the sdist lacks would make wheels differ from
    # a checkout, or fail to build: compare with git's view of the tree.
    tree = source_files(root)
    if tree is None:
        print("  sdist vs source tree: skipped (not a git work tree)")
    else:
        wanted = [
            f for f in tree
            if f.split("/", 1)[0] in ("src", "tests", "bench")
            or f in ("setup.py", "pyproject.toml", "README.md", "LICENSE", "MANIFEST.in")
        ]
        wanted = [f for f in wanted
                  if not matches(f, GENERATED + COMPILED) or matches(f, BENCH_C)]
        have = set(files)
        lacking = [f for f in wanted if f not in have]
        for f in lacking:
            problems.append(f"sdist: lacks {f}, which the source tree has")
        print(f"  sdist vs source tree: {len(wanted) - len(lacking)} of {len(wanted)} "
              "source files present")
    return files


def elf_section_names(data):
    """Names of the sections of an ELF file (bytes), or None if it is not ELF."""
    if data[:4] != b"\x7fELF" or data[4] not in (1, 2) or data[5] not in (1, 2):
        return None
    wide = data[4] == 2                      # ELFCLASS64
    order = "<" if data[5] == 1 else ">"     # ELFDATA2LSB / MSB
    if wide:
        shoff, = struct.unpack_from(order + "Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", data, 0x3A)
        entry = order + "I4xQQQQ"            # name, type, flags, addr, offset, size
    else:
        shoff, = struct.unpack_from(order + "I", data, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", data, 0x2E)
        entry = order + "I4xIIII"
    if shoff == 0 or shnum == 0:
        return []
    headers = [struct.unpack_from(entry, data, shoff + i * shentsize) for i in range(shnum)]
    strings_offset, strings_size = headers[shstrndx][3], headers[shstrndx][4]
    strings = data[strings_offset:strings_offset + strings_size]
    return [strings[h[0]:strings.index(b"\0", h[0])].decode("ascii", "replace")
            for h in headers]


def unstripped_sections(data):
    """The sections a stripped shared object lacks: the symbol table, debug info."""
    names = elf_section_names(data) or []
    return [n for n in names if n in (".symtab", ".strtab") or n.startswith((".debug_", ".zdebug_"))]


def check_classifiers(path, problems):
    """PyPI refuses an upload naming a classifier it does not know; twine does not
    check that. Uses the trove-classifiers package when it is installed."""
    try:
        from trove_classifiers import classifiers as known
    except ImportError:
        print("  classifiers: not checked (pip install trove-classifiers to check them)")
        return
    with tarfile.open(path) as tar:
        member = next(m for m in tar.getmembers()
                      if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO"))
        metadata = email.parser.Parser().parsestr(tar.extractfile(member).read().decode())
    used = metadata.get_all("Classifier") or []
    unknown = [c for c in used if c not in known]
    for c in unknown:
        problems.append(f"sdist: classifier unknown to PyPI: {c}")
    print(f"  classifiers: {len(used)}, {len(used) - len(unknown)} known to PyPI")


def check_wheel(path, sdist_files, version, problems):
    with zipfile.ZipFile(path) as whl:
        files = sorted(i.filename for i in whl.infolist() if not i.is_dir())
    distinfo = f"elman-{version}.dist-info"

    # Our own compiled modules (a vendored runtime library is the toolchain's).
    compiled = [f for f in files if matches(f, COMPILED) and f.startswith("elman/")
                and not f.startswith("elman/.dylibs/")]
    baseline = [f for f in compiled if re.fullmatch(r"elman/_kernels\.[^/]*(so|pyd)", f)]
    if not baseline:
        problems.append("wheel: missing the compiled module elman/_kernels.*.so|.pyd")
    # setup.py builds the AVX2 variant for x86-64 targets; with
    # ELMAN_REQUIRE_EXTENSION=1 (every wheel build) it may not silently go missing.
    tag = os.path.basename(path)[:-len(".whl")].split("-")[-1]
    if ("src/elman/_kernels_avx2.pyx" in sdist_files
            and any(arch in tag for arch in ("x86_64", "amd64"))
            and not any(re.fullmatch(r"elman/_kernels_avx2\.[^/]*(so|pyd)", f) for f in files)):
        problems.append("wheel: x86-64 wheel without the AVX2 variant elman/_kernels_avx2.*")
    if "elman/py.typed" not in files:
        problems.append("wheel: missing elman/py.typed (PEP 561: type checkers would "
                        "ignore the package's annotations)")
    if not any(fnmatch.fnmatch(f, "elman/datasets/*.csv.gz") for f in files):
        problems.append("wheel: missing the data set elman/datasets/*.csv.gz")
    for f in ("METADATA", "WHEEL", "RECORD", "entry_points.txt", "licenses/LICENSE"):
        if f"{distinfo}/{f}" not in files:
            problems.append(f"wheel: missing {distinfo}/{f}")

    # The whole Python package: every module of the sdist's src/elman.
    for f in sdist_files:
        if fnmatch.fnmatch(f, "src/elman/*.py") or fnmatch.fnmatch(f, "src/elman/*/*.py"):
            inside = f[len("src/"):]
            if inside not in files:
                problems.append(f"wheel: missing {inside}")

    allowed = [
        "elman/*.py", "elman/*/*.py", "elman/*.pyi", "elman/py.typed",
        "elman/*.so", "elman/*.pyd",
        "elman/datasets/*.csv.gz",
        f"{distinfo}/*",
        # The OpenMP runtime of the compiled kernels, the one library a repaired
        # wheel may carry: auditwheel vendors libgomp (Linux), delocate libomp
        # (macOS). Anything else vendored is a dependency nobody meant to add.
        "elman.libs/libgomp-*.so*", "elman/.dylibs/libomp.dylib",
    ]
    for f in files:
        if matches(f, ["*.pyx", "*.pxd", "*.pxi"]):
            problems.append(f"wheel: Cython source {f}")
        elif matches(f, GENERATED):
            problems.append(f"wheel: generated or built file {f}")
        elif f.startswith(("tests/", "bench/", "elman/tests/")):
            problems.append(f"wheel: test or bench file {f}")
        elif not matches(f, allowed):
            # e.g. another library in elman.libs/ (one auditwheel had to vendor) or
            # stray files
            problems.append(f"wheel: unexpected file {f}")

    with zipfile.ZipFile(path) as whl:
        metadata = whl.read(f"{distinfo}/METADATA").decode("utf-8")
    for field in ("Requires-Python:", "License-Expression: BSD-3-Clause", "Project-URL:",
                  "Requires-Dist: numpy", "Description-Content-Type: text/markdown"):
        if field not in metadata:
            problems.append(f"wheel: METADATA lacks {field!r}")
    return files, compiled


def describe(label, path, files):
    """One line for the archive, then one per directory with the names it holds."""
    kinds = {}
    for f in files:
        base = os.path.basename(f)
        kind = base.split(".", 1)[1] if "." in base else base
        kinds[kind] = kinds.get(kind, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    print(f"  {label}: {os.path.basename(path)} ({os.path.getsize(path) / 1024:.1f} KiB, "
          f"{len(files)} files: {summary})")
    folders = {}
    for f in files:
        folder, _, name = f.rpartition("/")
        folders.setdefault(folder or ".", []).append(name)
    for folder, names in sorted(folders.items()):
        print(f"    {folder}/: {' '.join(sorted(names))}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source-root", default=".")
    parser.add_argument("--sdist", required=True)
    parser.add_argument("--wheel", action="append", default=[])
    args = parser.parse_args()

    problems = []
    version = read_version(args.source_root)
    expected = f"elman-{version}.tar.gz"
    if os.path.basename(args.sdist) != expected:
        problems.append(f"sdist: named {os.path.basename(args.sdist)}, expected {expected}")

    sdist_files = check_sdist(args.sdist, args.source_root, problems)
    describe("sdist", args.sdist, sdist_files)
    check_classifiers(args.sdist, problems)
    for wheel in args.wheel:
        if not os.path.basename(wheel).startswith(f"elman-{version}-"):
            problems.append(f"wheel: {os.path.basename(wheel)} is not version {version}")
        files, compiled = check_wheel(wheel, sdist_files, version, problems)
        describe("wheel", wheel, files)
        for f in compiled:
            with zipfile.ZipFile(wheel) as whl:
                data = whl.read(f)
            sections = elf_section_names(data)
            if sections is None:
                stripped = "not ELF, not checked"
            else:
                extra = unstripped_sections(data)
                stripped = "stripped" if not extra else "NOT stripped"
                if extra:
                    problems.append(f"wheel: {f} is not stripped (sections {' '.join(extra)})")
            print(f"    compiled module {f}: {len(data) / 1024:.1f} KiB ({stripped})")

    for p in problems:
        print(f"  PROBLEM {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
