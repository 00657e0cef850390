"""Prove that the baseline compiled module needs nothing beyond x86-64's baseline.

    python .ci/check_isa.py WHEEL_OR_SO [...]

Disassembles every x86-64 ELF extension module in the given wheels (or the given
.so files) with objdump and looks at every instruction:

* the baseline module (any name not carrying an ISA suffix, e.g.
  ``_kernels.cpython-311-x86_64-linux-gnu.so``) may use x86-64 v1 only: SSE2 at
  most. No VEX/EVEX encoding (AVX, AVX2, FMA, F16C, AVX-512: every such mnemonic
  starts with "v", and ymm/zmm/k registers appear only with them), no SSE3, SSSE3,
  SSE4.x, POPCNT, LZCNT, BMI, MOVBE, CMPXCHG16B, AES, PCLMUL or SHA;
* a module whose name carries ``_avx2`` (an optional variant chosen at import by
  the CPU dispatch) may use x86-64 v3 (AVX2, FMA, BMI, ...) but no AVX-512;
* a module whose name carries ``_avx512`` is not restricted.

Static proof is the right tool here: a module that contains no AVX instruction
cannot fault on a CPU without AVX, whatever path it takes at run time. Code in
other libraries it calls (libm's tanh) dispatches on the CPU by itself.

Exits 1 if an instruction is above the module's allowance, or if no baseline
module was found at all (a check of nothing would pass vacuously).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

# Above x86-64 v1 (SSE2), by extension. Mnemonics as objdump prints them in Intel
# syntax (no size suffixes). pextrw/pinsrw are SSE2 and deliberately absent.
BEYOND_V1 = {
    "SSE3": "addsubpd addsubps haddpd haddps hsubpd hsubps lddqu movddup movshdup "
            "movsldup fisttp monitor mwait",
    "SSSE3": "pabsb pabsw pabsd palignr phaddw phaddd phaddsw phsubw phsubd phsubsw "
             "pmaddubsw pmulhrsw pshufb psignb psignw psignd",
    "SSE4.1": "blendpd blendps blendvpd blendvps dppd dpps extractps insertps movntdqa "
              "mpsadbw packusdw pblendvb pblendw pcmpeqq pextrb pextrd pextrq "
              "phminposuw pinsrb pinsrd pinsrq pmaxsb pmaxsd pmaxud pmaxuw pminsb "
              "pminsd pminud pminuw pmovsxbw pmovsxbd pmovsxbq pmovsxwd pmovsxwq "
              "pmovsxdq pmovzxbw pmovzxbd pmovzxbq pmovzxwd pmovzxwq pmovzxdq pmuldq "
              "pmulld ptest roundpd roundps roundsd roundss",
    "SSE4.2": "crc32 pcmpestri pcmpestrm pcmpistri pcmpistrm pcmpgtq",
    "POPCNT/LZCNT/BMI/MOVBE": "popcnt lzcnt tzcnt andn bextr blsi blsmsk blsr bzhi "
                              "mulx pdep pext rorx sarx shlx shrx movbe",
    "CMPXCHG16B": "cmpxchg16b",
    "AES/PCLMUL/SHA": "aesenc aesenclast aesdec aesdeclast aesimc aeskeygenassist "
                      "pclmulqdq sha1rnds4 sha1nexte sha1msg1 sha1msg2 sha256rnds2 "
                      "sha256msg1 sha256msg2",
}
# x86-64 v3 adds these (and VEX encodings) to v2; the AVX2 variant may use them.
V3_EXTENSIONS = {"POPCNT/LZCNT/BMI/MOVBE", "SSE3", "SSSE3", "SSE4.1", "SSE4.2", "CMPXCHG16B"}
# Virtualisation and segment-check instructions also start with "v" but are not VEX.
NOT_VEX = {"verr", "verw", "vmcall", "vmlaunch", "vmresume", "vmxoff", "vmxon", "vmread",
           "vmwrite", "vmptrld", "vmptrst", "vmclear", "vmfunc"}
PREFIXES = {"rep", "repe", "repz", "repne", "repnz", "lock", "bnd", "notrack", "data16",
            "addr32", "cs", "ds", "es", "fs", "gs", "ss", "{vex}", "{evex}"}
MNEMONIC_KIND = {m: kind for kind, names in BEYOND_V1.items() for m in names.split()}
ZMM_OR_MASK = re.compile(r"\b(zmm\d+|k[1-7])\b|\{k[1-7]\}")
YMM = re.compile(r"\bymm\d+\b")


def classify(instruction):
    """The extension an instruction needs beyond x86-64 v1, or None."""
    words = instruction.split()
    while words and words[0] in PREFIXES:
        words = words[1:]
    if not words:
        return None
    mnemonic, operands = words[0], " ".join(words[1:])
    if ZMM_OR_MASK.search(operands) or mnemonic.startswith("{evex}"):
        return "AVX-512"
    if mnemonic.startswith("v") and mnemonic not in NOT_VEX:
        if mnemonic.startswith(("vfmadd", "vfmsub", "vfnmadd", "vfnmsub")):
            return "FMA"
        return "AVX/AVX2 (VEX)" + (" ymm" if YMM.search(operands) else "")
    return MNEMONIC_KIND.get(mnemonic)


def allowance(name):
    if "_avx512" in name:
        return "avx512", lambda kind: True
    if "_avx2" in name:
        return "x86-64-v3", lambda kind: kind != "AVX-512"
    return "x86-64 baseline (SSE2)", lambda kind: kind is None


def is_x86_64_elf(path):
    with open(path, "rb") as f:
        head = f.read(20)
    # ELF magic, 64-bit class, e_machine (bytes 18-19, little endian) 62 = x86-64
    return head[:4] == b"\x7fELF" and head[4] == 2 and head[18:20] == b"\x3e\x00"


def scan(path, name):
    level, allowed = allowance(name)
    disassembly = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", "-M", "intel", path],
        check=True, capture_output=True, text=True,
    ).stdout
    count, offending, function = 0, {}, "?"
    for line in disassembly.splitlines():
        header = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if header:
            function = header.group(1)
            continue
        parts = line.split("\t")
        if len(parts) < 2 or not re.match(r"^\s*[0-9a-f]+:$", parts[0]):
            continue
        # drop objdump's comments and symbol names, which are not operands
        instruction = re.sub(r"<[^>]*>", "", parts[-1].split("#")[0]).strip()
        if not instruction or instruction == "(bad)":
            continue
        count += 1
        kind = classify(instruction)
        if kind is not None and not allowed(kind):
            offending.setdefault(kind, []).append(f"{function}: {instruction}")
    return level, count, offending


def modules_in(paths, workdir):
    for path in paths:
        if path.endswith(".whl"):
            with zipfile.ZipFile(path) as whl:
                for member in whl.namelist():
                    if member.endswith(".so"):
                        target = os.path.join(workdir, member)
                        os.makedirs(os.path.dirname(target), exist_ok=True)
                        with whl.open(member) as src, open(target, "wb") as dst:
                            shutil.copyfileobj(src, dst)
                        yield f"{os.path.basename(path)}:{member}", target
        else:
            yield path, path


def main(paths):
    if shutil.which("objdump") is None:
        print("  PROBLEM objdump (binutils) is not installed")
        return 1
    failed, baseline_seen = False, False
    with tempfile.TemporaryDirectory() as workdir:
        for label, path in modules_in(paths, workdir):
            name = os.path.basename(path)
            if not is_x86_64_elf(path):
                print(f"  {label}: not an x86-64 ELF module, skipped")
                continue
            level, count, offending = scan(path, name)
            if level.startswith("x86-64 baseline"):
                baseline_seen = True
            if offending:
                failed = True
                print(f"  {label}: allowed {level}; FOUND {sum(map(len, offending.values()))} "
                      f"instructions beyond it among {count}:")
                for kind, where in sorted(offending.items()):
                    print(f"    {kind}: {len(where)}, e.g. " + "; ".join(where[:3]))
            else:
                print(f"  {label}: {count} instructions, none beyond {level}")
    if not baseline_seen:
        print("  PROBLEM no baseline x86-64 module was found to check")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1:]))
