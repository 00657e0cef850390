# cython: language_level=3
"""The compiled kernels of ``_kernels.pyx``, built with AVX2 and FMA enabled.

Same source, same functions and results (to rounding: FMA contracts a*b+c into one
rounding). ``elman._backend`` imports this module only when the CPU reports AVX2
and FMA; ``ELMAN_ISA=baseline`` forces the portable ``_kernels`` instead.
"""

include "_kernels.pyx"

INSTRUCTION_SET = "avx2+fma"
