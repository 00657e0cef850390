"""The release checks in .ci/ that judge built files: is a shared object stripped?

These run from a checkout (the sdist, and so cibuildwheel's test copy, carries no
.ci/ directory, and they are skipped there).
"""

import importlib.util
import pathlib
import shutil
import struct
import subprocess

import pytest

CHECKER = pathlib.Path(__file__).resolve().parents[1] / ".ci" / "check_dist_contents.py"
pytestmark = pytest.mark.skipif(not CHECKER.is_file(),
                                reason="not a checkout: .ci/check_dist_contents.py is absent")


@pytest.fixture(scope="module")
def checker():
    spec = importlib.util.spec_from_file_location("check_dist_contents", CHECKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def elf_with_sections(names, wide=True, byteorder="<"):
    """A minimal ELF file holding only a section header table with these names."""
    strings = b"\0" + b"".join(n.encode() + b"\0" for n in names + [".shstrtab"])
    offsets, position = [], 1
    for n in names + [".shstrtab"]:
        offsets.append(position)
        position += len(n) + 1
    header_size = 64 if wide else 52
    entry_size = 64 if wide else 40
    strings_at = header_size
    table_at = strings_at + len(strings)
    count = len(names) + 2                        # the null section, names, .shstrtab
    ident = b"\x7fELF" + bytes([2 if wide else 1, 1 if byteorder == "<" else 2, 1]) + bytes(9)
    if wide:
        header = ident + struct.pack(byteorder + "HHIQQQIHHHHHH", 3, 62, 1, 0, 0, table_at,
                                     0, header_size, 0, 0, entry_size, count, count - 1)
        entry = byteorder + "IIQQQQIIQQ"
    else:
        header = ident + struct.pack(byteorder + "HHIIIIIHHHHHH", 3, 3, 1, 0, 0, table_at,
                                     0, header_size, 0, 0, entry_size, count, count - 1)
        entry = byteorder + "IIIIIIIIII"
    table = bytes(entry_size)
    for offset in offsets[:-1]:
        table += struct.pack(entry, offset, 1, 0, 0, 0, 0, 0, 0, 0, 0)
    table += struct.pack(entry, offsets[-1], 3, 0, 0, strings_at, len(strings), 0, 0, 1, 0)
    assert len(header) == header_size
    return header + strings + table


@pytest.mark.parametrize("wide, byteorder", [(True, "<"), (True, ">"), (False, "<")])
def test_section_names_are_read_from_the_elf_header(checker, wide, byteorder):
    names = [".text", ".dynsym", ".symtab", ".strtab", ".debug_info"]
    data = elf_with_sections(names, wide, byteorder)
    assert checker.elf_section_names(data) == ["", *names, ".shstrtab"]
    assert checker.unstripped_sections(data) == [".symtab", ".strtab", ".debug_info"]
    stripped = elf_with_sections([".text", ".dynsym", ".dynstr"], wide, byteorder)
    assert checker.unstripped_sections(stripped) == []


def test_other_formats_are_not_judged(checker):
    assert checker.elf_section_names(b"MZ\x90\x00" + bytes(60)) is None      # a .pyd
    assert checker.elf_section_names(b"\xcf\xfa\xed\xfe" + bytes(60)) is None  # Mach-O
    assert checker.unstripped_sections(b"MZ" + bytes(62)) == []


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc)")
def test_a_real_shared_object_is_judged_before_and_after_stripping(checker, tmp_path):
    source = tmp_path / "probe.c"
    source.write_text("int probe_value(int x) { return 2 * x + 1; }\n")
    built = {}
    for name, flags in {"debug": ["-g"], "stripped": ["-s"]}.items():
        target = tmp_path / f"{name}.so"
        subprocess.run(["cc", "-shared", "-fPIC", "-O1", *flags, "-o", str(target),
                        str(source)], check=True)
        built[name] = checker.unstripped_sections(target.read_bytes())
    assert ".symtab" in built["debug"] and ".debug_info" in built["debug"]
    assert built["stripped"] == []
