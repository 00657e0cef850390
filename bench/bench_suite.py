"""The performance suite: elman compiled, its NumPy twin, PyTorch and JAX.

    python bench/bench_suite.py [--quick] [--threads N] [--rounds N] [--no-torch]
                                [--no-jax] [--shapes "I,H,T,B;I,H,T,B"]
                                [--dtypes float64,float32]

For every shape (input, hidden, time, batch) and dtype it times, interleaved in one
run (medians of rounds; see ``_common``):

* ``step``: one full training step -- forward, MSE loss, BPTT, clipping by value
  (5.0), one SGD update. elman: ``model.fit`` with ``batch_size`` = batch over
  enough sequences to make an epoch of several steps, divided by the steps (what
  ``fit`` costs per batch; on the compiled backend a chunk of steps is one
  compiled call). PyTorch: ``nn.RNN(tanh, batch_first) + nn.Linear``, autograd,
  ``clip_grad_value_``, ``torch.optim.SGD`` (``zero_grad``/``backward``/``step``).
  JAX: one ``jax.jit``-compiled function -- a ``lax.scan`` over the steps,
  ``jax.value_and_grad`` of the MSE, clipping by value and the SGD update -- with
  float64 enabled (``jax_enable_x64``), called with its outputs fed back as the next
  parameters and waited for (``block_until_ready``).
* ``fwd``: a forward pass of the batch (``model.forward``; PyTorch under
  ``torch.no_grad()``; JAX a jitted scan and head).

It prints medians, ratios to the compiled backend (>1: compiled faster), achieved
GFLOP/s (the matrix flops of the model: a step counts 6 (I H + H^2 + H O) per
sequence step, a forward 2 (I H + H^2 + H O)) and that as a fraction of this
machine's GEMM rate: NumPy's 1024 x 1024 matmul in the same dtype, timed in the
same run with the same number of BLAS threads.

Memory (float64 step, compiled backend): the peak of what one training step
allocates beyond its inputs and the model: tracemalloc's peak over one ``fit``
step (NumPy registers its allocations with tracemalloc) plus the C buffer the
compiled ``train_steps`` mallocs, computed from its size formula
(``train_steps_malloc_elements`` below, which follows ``train_steps`` and
``_loss_grad_work_size`` in ``_kernels.pyx``; tracemalloc cannot see C mallocs). The
table states it as  states + k x weights,  where states = the hidden states
the backward pass must keep (layers x batch x time x hidden) and weights = the
parameter vector, so k is the number of weight-sized buffers on top of the states.

Threads: ``--threads N`` sets OPENBLAS_NUM_THREADS (etc.) before NumPy loads and
``torch.set_num_threads(N)``; default 1. JAX (XLA's CPU backend) has no thread
setting of its own: its compiled code runs on an Eigen thread pool as large as the
CPUs the process may use. So for JAX the script sets, before JAX loads,
``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``
with one thread (XLA then runs its operations on the calling thread), and
``intra_op_parallelism_threads=N`` with N; an ``XLA_FLAGS`` already in the
environment is kept as it is. To confine every library to exactly N cores
whatever threads it starts, run the whole script under ``taskset``, e.g.
``taskset -c 0 python bench/bench_suite.py`` and ``taskset -c 0,1 python
bench/bench_suite.py --threads 2``. With more than one thread, times are wall
clock (CPU seconds would add the threads up), and each case waits 0.15 s and runs
once untimed before it is timed, so that the threads of the case before
(OpenBLAS's spin for about 0.1 s after a threaded product) do not take its cores
and the cores the wait let go idle are back to speed.

``--quick`` is the CI smoke run: every case once (no warm-up, one round), under a
minute; its numbers are only a smoke test.
"""

import argparse
import os
import sys

from _common import pin_threads

THREADS = pin_threads(default=1)
if "--no-jax" not in sys.argv and "XLA_FLAGS" not in os.environ:
    os.environ["XLA_FLAGS"] = (
        "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" if THREADS == 1
        else f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={THREADS}")

import gc  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

import elman  # noqa: E402
from _common import (add_clock_argument, apply_clock_argument, format_seconds,  # noqa: E402
                     machine_line, print_table, time_interleaved)
from elman import _backend, _engine  # noqa: E402

SHAPES = [(1, 50, 10, 1), (3, 4, 7, 1), (1, 20, 5, 1), (1, 5, 3, 1), (1, 128, 50, 1),
          (8, 256, 100, 1), (8, 64, 50, 32), (32, 256, 100, 64), (64, 512, 100, 128)]
OUTPUT = 1
CLIP = 5.0
LR = 1e-3


def step_flops(I, H, T, B, O=OUTPUT):
    return 6.0 * B * T * (I * H + H * H + H * O)


def forward_flops(I, H, T, B, O=OUTPUT):
    return 2.0 * B * T * (I * H + H * H + H * O)


def steps_per_epoch(shape):
    """Enough steps per fit epoch (up to 256, about 0.4 GFLOP in all) that fit's own
    Python setup (validation, history, a few hundred microseconds) is a small share
    of the time per step, as in real training with many batches per epoch."""
    flops = step_flops(*shape)
    return int(min(256, max(1, 4e8 // flops)))


def data(shape, n, dtype, seed=0):
    I, H, T, B = shape
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, I)).astype(dtype)
    Y = rng.normal(size=(n, T, OUTPUT)).astype(dtype)
    return X, Y


def elman_cases(shape, dtype, backend):
    I, H, T, B = shape
    k = steps_per_epoch(shape)
    X, Y = data(shape, B * k, dtype)
    model = elman.RNN(I, H, OUTPUT, dtype=dtype, seed=0)
    opt = elman.optimizers.SGD(lr=LR)
    Xf = X[:B]

    def step(n):
        with elman.use_backend(backend):
            for _ in range(n):
                model.fit(X, Y, epochs=1, batch_size=B, optimizer=opt, clip_value=CLIP,
                          shuffle=False)

    def forward(n):
        with elman.use_backend(backend):
            for _ in range(n):
                model.forward(Xf)

    return {"step": (step, k), "fwd": (forward, 1)}


def torch_cases(torch, shape, dtype):
    I, H, T, B = shape
    tdtype = getattr(torch, dtype)
    torch.manual_seed(0)
    rnn = torch.nn.RNN(I, H, nonlinearity="tanh", batch_first=True).to(tdtype)
    head = torch.nn.Linear(H, OUTPUT).to(tdtype)
    params = list(rnn.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=LR)
    loss_fn = torch.nn.MSELoss()
    X, Y = data(shape, B, dtype)
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)

    def step(n):
        for _ in range(n):
            opt.zero_grad()
            out, _ = rnn(Xt)
            loss = loss_fn(head(out), Yt)
            loss.backward()
            torch.nn.utils.clip_grad_value_(params, CLIP)
            opt.step()

    def forward(n):
        with torch.no_grad():
            for _ in range(n):
                head(rnn(Xt)[0])

    return {"step": (step, 1), "fwd": (forward, 1)}


def jax_cases(jax, shape, dtype):
    """A jitted training step and forward pass in JAX, the same model and data."""
    import jax.numpy as jnp

    I, H, T, B = shape
    X, Y = data(shape, B, dtype)
    rng = np.random.default_rng(0)
    bound = 1.0 / np.sqrt(H)
    params = {name: jnp.asarray(rng.uniform(-bound, bound, size=size).astype(dtype))
              for name, size in (("Wxh", (H, I)), ("Whh", (H, H)), ("bh", (H,)),
                                 ("Why", (OUTPUT, H)), ("by", (OUTPUT,)))}
    Xt = jnp.asarray(X.transpose(1, 0, 2))  # (T, B, I): scan runs over the first axis
    Yt = jnp.asarray(Y.transpose(1, 0, 2))

    def outputs(p, Xs):
        def cell(h, x):
            h = jnp.tanh(x @ p["Wxh"].T + h @ p["Whh"].T + p["bh"])
            return h, h
        _, hs = jax.lax.scan(cell, jnp.zeros((B, H), dtype=dtype), Xs)
        return hs @ p["Why"].T + p["by"]

    def loss(p, Xs, Ys):
        return jnp.mean((outputs(p, Xs) - Ys) ** 2)

    @jax.jit
    def train_step(p, Xs, Ys):
        value, grads = jax.value_and_grad(loss)(p, Xs, Ys)
        return jax.tree_util.tree_map(
            lambda w, g: w - LR * jnp.clip(g, -CLIP, CLIP), p, grads), value

    forward_jit = jax.jit(outputs)
    state = [params]

    def step(n):
        p = state[0]
        for _ in range(n):
            p, value = train_step(p, Xt, Yt)
        value.block_until_ready()
        state[0] = p

    def forward(n):
        for _ in range(n):
            out = forward_jit(params, Xt)
        out.block_until_ready()

    return {"step": (step, 1), "fwd": (forward, 1)}


def gemm_cases(dtype):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(1024, 1024)).astype(dtype)
    b = rng.normal(size=(1024, 1024)).astype(dtype)
    c = np.empty_like(a)

    def run(n):
        for _ in range(n):
            np.matmul(a, b, out=c)

    return run


def train_steps_malloc_elements(I, H, O, L, batch, T, P):
    """Floating-point elements the compiled train_steps mallocs for one call: the
    gradient, the gathered batch (X, Y, h0) and _loss_and_grad's work buffer
    (transposes, the states of every layer, two buffers for the layer below, a few
    vectors, dA of one sequence and one layer's gWxh^T); see _kernels.pyx."""
    sequence = batch * T * H
    work = (H * I + (L - 1) * H * H + L * sequence + (2 * sequence if L > 1 else 0)
            + 2 * H + O + T * H + max(I, H) * H)
    return P + batch * T * I + batch * T * O + L * batch * H + work + 1


def step_memory(shape, dtype="float64"):
    """(peak extra bytes of one compiled fit step, states bytes, weights bytes, path)."""
    I, H, T, B = shape
    L = 1
    X, Y = data(shape, B, dtype)
    model = elman.RNN(I, H, OUTPUT, dtype=dtype, seed=0)
    opt = elman.optimizers.SGD(lr=LR)
    itemsize = np.dtype(dtype).itemsize
    with elman.use_backend("cython"):
        model.fit(X, Y, epochs=1, batch_size=B, optimizer=opt, clip_value=CLIP)  # warm up
        gc.collect()
        tracemalloc.start()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        model.fit(X, Y, epochs=1, batch_size=B, optimizer=opt, clip_value=CLIP,
                  shuffle=False)
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        fused = _engine.route(B, H).name == "fused"
    c_malloc = 0
    if fused:
        c_malloc = train_steps_malloc_elements(I, H, OUTPUT, L, B, T,
                                               model.n_params) * itemsize
    # On the gemm path the compiled recurrences malloc nothing: every buffer is a
    # NumPy array, which tracemalloc sees.
    states = L * B * T * H * itemsize
    weights = model.n_params * itemsize
    return peak + c_malloc, states, weights, "fused" if fused else "gemm"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke run (< 60 s)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--no-jax", action="store_true")
    parser.add_argument("--shapes", default=None, help='e.g. "1,50,10,1;3,4,7,1"')
    parser.add_argument("--dtypes", default="float64,float32")
    add_clock_argument(parser)
    args = parser.parse_args(argv)
    clock = apply_clock_argument(args)
    rounds = args.rounds or (1 if args.quick else 7)
    target = 0 if args.quick else 0.02
    shapes = SHAPES
    if args.shapes:
        shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes.split(";")]
    dtypes = args.dtypes.split(",")

    torch = None
    torch_note = "PyTorch: not installed (pip install torch==2.13.0 to compare)"
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(args.threads)
            torch_note = (f"PyTorch {torch.__version__}, torch.set_num_threads"
                          f"({args.threads})")
        except ImportError:
            torch = None
    jax = None
    jax_note = "JAX: not installed (pip install jax to compare)"
    if not args.no_jax:
        try:
            import jax
            jax.config.update("jax_enable_x64", True)
            jax_note = f"JAX {jax.__version__}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
        except ImportError:
            jax = None
    backends = ["cython", "numpy"] if elman.compiled_available() else ["numpy"]
    isa = getattr(_backend.get_kernels(backends[0]), "INSTRUCTION_SET", "baseline") \
        if backends[0] == "cython" else "-"

    print("# bench_suite: training step and forward pass, elman compiled / NumPy twin / "
          "PyTorch")
    print(f"# {machine_line()}; BLAS threads {args.threads}; {torch_note}; {jax_note}")
    print(f"# elman compiled instruction set: {isa}; {rounds} interleaved rounds, medians of "
          f"{clock} time")

    cases = {}
    for dtype in dtypes:
        cases[("gemm", dtype)] = (gemm_cases(dtype), 1)
    for shape in shapes:
        for dtype in dtypes:
            for backend in backends:
                for kind, case in elman_cases(shape, dtype, backend).items():
                    cases[(shape, dtype, backend, kind)] = case
            if torch is not None:
                for kind, case in torch_cases(torch, shape, dtype).items():
                    cases[(shape, dtype, "torch", kind)] = case
            if jax is not None:
                for kind, case in jax_cases(jax, shape, dtype).items():
                    cases[(shape, dtype, "jax", kind)] = case
    # With several threads each case starts once the previous case's threads are
    # asleep (OpenBLAS's spin about 0.1 s after a threaded product, and a case run
    # meanwhile would share its cores with them), after one untimed repetition.
    medians = time_interleaved(cases, rounds, target, settle=0.15 if THREADS > 1 else 0.0)

    gemm_rate = {dtype: 2.0 * 1024 ** 3 / medians[("gemm", dtype)] for dtype in dtypes}
    print("\nGEMM rate (NumPy 1024x1024 matmul, same run, same threads): " + ", ".join(
        f"{dtype} {gemm_rate[dtype] / 1e9:.1f} GFLOP/s" for dtype in dtypes))

    names = {"cython": "compiled", "numpy": "twin", "torch": "torch", "jax": "jax"}
    peers = {"torch": torch, "jax": jax}
    others = [b for b in ["numpy", "torch", "jax"]
              if b in backends or peers.get(b) is not None]
    for kind, flops_of in (("step", step_flops), ("fwd", forward_flops)):
        title = ("training step (forward, loss, BPTT, clip, SGD update)" if kind == "step"
                 else "forward pass")
        print(f"\n## {title}: medians; ratio = time / compiled time (>1: compiled faster); "
              f"GFLOP/s and % of the GEMM rate of the dtype")
        headers = ["(I, H, T, B)", "dtype", "compiled"]
        for b in others:
            headers += [names[b], f"{names[b]}/comp"]
        headers += ["comp GFLOP/s", "% GEMM"]
        headers += [f"{names[b]} GFLOP/s" for b in peers if peers[b] is not None]
        rows = []
        for shape in shapes:
            for dtype in dtypes:
                ref = medians.get((shape, dtype, backends[0], kind))
                row = [str(shape), dtype, format_seconds(ref)]
                for b in others:
                    t = medians[(shape, dtype, b, kind)]
                    row += [format_seconds(t), f"{t / ref:.1f}x"]
                rate = flops_of(*shape) / ref
                row += [f"{rate / 1e9:.2f}", f"{100 * rate / gemm_rate[dtype]:.0f}%"]
                row += [f"{flops_of(*shape) / medians[(shape, dtype, b, kind)] / 1e9:.2f}"
                        for b in peers if peers[b] is not None]
                rows.append(row)
        print_table(headers, rows)

    if "cython" in backends:
        print("\n## peak extra memory of one float64 training step (compiled backend; "
              "tracemalloc peak + the kernel's C buffer from its size formula)")
        rows = []
        for shape in shapes:
            extra, states, weights, path = step_memory(shape)
            k = (extra - states) / weights
            rows.append([str(shape), path, f"{extra / 1024:.1f} KiB",
                         f"{states / 1024:.1f} KiB", f"{weights / 1024:.1f} KiB",
                         f"states + {k:.1f} x weights"])
        print_table(["(I, H, T, B)", "path", "peak extra", "states", "weights",
                     "peak = "], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
