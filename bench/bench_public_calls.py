"""The public calls beside the bare kernel call they end in, and PyTorch.

    python bench/bench_public_calls.py [--quick] [--rounds N] [--no-torch] [--no-jax]
                                       [--stat median|min] [--threads N]

What a script that calls the model itself pays per call, float64, on one thread
(``--threads N``: N for every library, wall clock, each case timed after the
threads of the case before have gone back to sleep):

* ``forward`` at (I, H, T, B) = (3, 4, 7, 1): ``model.forward(X)``;
* ``loss_and_grad`` at (3, 4, 7, 1), (1, 50, 10, 1) and (32, 256, 100, 64):
  ``model.loss_and_grad(X, Y)`` (the last on the gemm route: on one thread with the
  batch whole, on several cut into chunks);
* ``stream step`` at (1, 50, 1, 1): one step of the streaming idiom
  ``y, h = model.forward(x_t[None, :], h, return_state=True)``;
* ``stream step, Python check``: the same idiom with the step's input test done in
  Python (``_validation.stream_step_ready_python``, what the NumPy backend uses)
  instead of in one compiled call: what the compiled test saves (no peers timed);
* ``predict`` at (3, 4, 7, 1): ``model.predict(X)``.

Beside each: ``kernel``, the compiled kernel function the call ends in (``step``
for the stream step), called
with arrays made ready beforehand (its own cost: reading the arrays' headers, plus
the arithmetic), and ``torch``, the same computation in PyTorch (``nn.RNN`` +
``nn.Linear``; ``loss_and_grad`` is forward, ``MSELoss``, ``zero_grad`` and
``backward``; forward passes under ``torch.no_grad()``), and ``jax``, the same in
JAX when it is installed: ``jax.jit``-compiled functions (``lax.scan`` over the
steps; ``loss_and_grad`` is ``jax.value_and_grad`` of the MSE; the stream step one
cell and the head), float64 (``jax_enable_x64``), on one thread
(``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``,
or ``intra_op_parallelism_threads=N`` with ``--threads N``, set before JAX loads
unless ``XLA_FLAGS`` is already set), waited for with
``block_until_ready``. Ratios: torch / elman and jax / elman (how many times faster
the public call is than each) and public call / kernel (the overhead the Python
surface adds). Cases run interleaved; each reports the median of its rounds, or
with ``--stat min`` the minimum (see ``_common``).
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

import numpy as np  # noqa: E402

import elman  # noqa: E402
from _common import (add_clock_argument, apply_clock_argument, format_seconds,  # noqa: E402
                     machine_line, print_table, time_interleaved)
from elman import _backend, _engine, rnn  # noqa: E402
from elman._validation import stream_step_ready_python  # noqa: E402

# (call, (I, H, T, B))
CASES = [("forward", (3, 4, 7, 1)), ("loss_and_grad", (3, 4, 7, 1)),
         ("loss_and_grad", (1, 50, 10, 1)), ("stream step", (1, 50, 1, 1)),
         ("stream step, Python check", (1, 50, 1, 1)), ("predict", (3, 4, 7, 1)),
         ("loss_and_grad", (32, 256, 100, 64))]
# Cases timed against the elman calls above only, not against the peers.
WITHOUT_PEERS = {"stream step, Python check"}
OUTPUT = 1


def elman_case(call, shape):
    """(public call, bare kernel call) runners for one case."""
    I, H, T, B = shape
    rng = np.random.default_rng(0)
    X = rng.normal(size=(B, T, I))
    Y = rng.normal(size=(B, T, OUTPUT))
    model = elman.RNN(I, H, OUTPUT, seed=0)
    theta = model._theta
    kernels = _backend.get_kernels("cython")
    h0 = np.zeros((1, B, H))
    lengths = np.full(B, T, dtype=np.intp)
    Y_out = np.empty((B, T, OUTPUT))
    h_last = np.empty((1, B, H))
    grad = np.empty_like(theta)

    def kernel_forward(n):
        for _ in range(n):
            kernels.forward(theta, I, H, OUTPUT, 1, 0, True, X, h0, lengths, Y_out, h_last)

    # A large batch's call ends in the route table's gemm route, not in one kernel.
    loss_and_grad = (kernels.loss_and_grad if _engine.uses_fused_loops(B, H)
                     else _engine.route(B, H, kernels).loss_and_grad)

    def kernel_loss_and_grad(n):
        for _ in range(n):
            loss_and_grad(theta, I, H, OUTPUT, 1, 0, True, 0, X, Y, h0, lengths, grad)

    if call == "forward":
        def public(n):
            for _ in range(n):
                model.forward(X)
        return public, kernel_forward
    if call == "predict":
        def public(n):
            for _ in range(n):
                model.predict(X)
        return public, kernel_forward
    if call == "loss_and_grad":
        def public(n):
            for _ in range(n):
                model.loss_and_grad(X, Y)
        return public, kernel_loss_and_grad
    # stream step: the README's idiom, one input row at a time, state carried.
    stream = rng.normal(size=(4096, I))
    state = [model.forward(stream[0][None, :], None, return_state=True)[1]]

    def public(n):
        h = state[0]
        for i in range(n):
            _, h = model.forward(stream[i & 4095][None, :], h, return_state=True)
        state[0] = h

    if call == "stream step, Python check":
        compiled_public = public

        def public(n):
            compiled_check = rnn.stream_step_ready
            rnn.stream_step_ready = stream_step_ready_python
            try:
                compiled_public(n)
            finally:
                rnn.stream_step_ready = compiled_check

    x, h, y, h_next = X[0], np.zeros((1, H)), np.empty((1, OUTPUT)), np.empty((1, H))

    def kernel_step(n):
        for _ in range(n):
            kernels.step(theta, I, H, OUTPUT, 1, 0, x, h, y, h_next)

    return public, kernel_step


def torch_case(torch, call, shape):
    I, H, T, B = shape
    torch.manual_seed(0)
    rnn = torch.nn.RNN(I, H, nonlinearity="tanh", batch_first=True).double()
    head = torch.nn.Linear(H, OUTPUT).double()
    params = list(rnn.parameters()) + list(head.parameters())
    loss_fn = torch.nn.MSELoss()
    rng = np.random.default_rng(0)
    Xt = torch.from_numpy(rng.normal(size=(B, T, I)))
    Yt = torch.from_numpy(rng.normal(size=(B, T, OUTPUT)))

    if call in ("forward", "predict"):
        def run(n):
            with torch.no_grad():
                for _ in range(n):
                    head(rnn(Xt)[0])
        return run
    if call == "loss_and_grad":
        def run(n):
            for _ in range(n):
                for p in params:
                    p.grad = None
                loss = loss_fn(head(rnn(Xt)[0]), Yt)
                loss.backward()
        return run
    stream = torch.from_numpy(rng.normal(size=(4096, 1, 1, I)))
    state = [torch.zeros(1, 1, H, dtype=torch.float64)]

    def run(n):
        h = state[0]
        with torch.no_grad():
            for i in range(n):
                out, h = rnn(stream[i & 4095], h)
                head(out)
        state[0] = h
    return run


def jax_case(jax, call, shape):
    import jax.numpy as jnp

    I, H, T, B = shape
    rng = np.random.default_rng(0)
    bound = 1.0 / np.sqrt(H)
    params = {name: jnp.asarray(rng.uniform(-bound, bound, size=size))
              for name, size in (("Wxh", (H, I)), ("Whh", (H, H)), ("bh", (H,)),
                                 ("Why", (OUTPUT, H)), ("by", (OUTPUT,)))}
    Xt = jnp.asarray(rng.normal(size=(B, T, I)).transpose(1, 0, 2))  # scan over time
    Yt = jnp.asarray(rng.normal(size=(B, T, OUTPUT)).transpose(1, 0, 2))

    def cell(p, h, x):
        return jnp.tanh(x @ p["Wxh"].T + h @ p["Whh"].T + p["bh"])

    def outputs(p, Xs):
        def scan_cell(h, x):
            h = cell(p, h, x)
            return h, h
        _, hs = jax.lax.scan(scan_cell, jnp.zeros((B, H)), Xs)
        return hs @ p["Why"].T + p["by"]

    if call in ("forward", "predict"):
        forward = jax.jit(outputs)

        def run(n):
            for _ in range(n):
                out = forward(params, Xt)
            out.block_until_ready()
        return run
    if call == "loss_and_grad":
        loss_and_grad = jax.jit(jax.value_and_grad(
            lambda p, Xs, Ys: jnp.mean((outputs(p, Xs) - Ys) ** 2)))

        def run(n):
            for _ in range(n):
                loss, grads = loss_and_grad(params, Xt, Yt)
            loss.block_until_ready()
        return run

    @jax.jit
    def step(p, x, h):
        h = cell(p, h, x)
        return h @ p["Why"].T + p["by"], h

    stream = [jnp.asarray(v) for v in rng.normal(size=(64, 1, I))]
    state = [jnp.zeros((1, H))]

    def run(n):
        h = state[0]
        for i in range(n):
            y, h = step(params, stream[i & 63], h)
        h.block_until_ready()
        state[0] = h
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round, no warm-up")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.05,
                        help="target time of one case in one round")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--no-jax", action="store_true")
    parser.add_argument("--stat", choices=("median", "min"), default="median",
                        help="which of each case's rounds to report")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for every library (read before NumPy loads)")
    add_clock_argument(parser)
    args = parser.parse_args(argv)
    args.threads = THREADS
    clock = apply_clock_argument(args)
    torch = None
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(THREADS)
        except ImportError:
            torch = None
    jax = None
    if not args.no_jax:
        try:
            import jax
            jax.config.update("jax_enable_x64", True)
        except ImportError:
            jax = None
    if not _backend.compiled_available():
        raise SystemExit("the compiled kernels are not built; nothing to compare")

    cases = {}
    for call, shape in CASES:
        key = f"{call} {shape}"
        public, kernel = elman_case(call, shape)
        cases[(key, "elman")] = (public, 1)
        cases[(key, "kernel")] = (kernel, 1)
        if call in WITHOUT_PEERS:
            continue
        if torch is not None:
            cases[(key, "torch")] = (torch_case(torch, call, shape), 1)
        if jax is not None:
            cases[(key, "jax")] = (jax_case(jax, call, shape), 1)
    rounds = 1 if args.quick else args.rounds
    with elman.use_backend("cython"):
        # With several threads, each case starts after the threads of the case
        # before have gone back to sleep (see _common.time_interleaved).
        times = time_interleaved(cases, rounds, 0 if args.quick else args.seconds,
                                 statistic=min if args.stat == "min" else None,
                                 settle=0.15 if THREADS > 1 and not args.quick else 0.0)

    print(machine_line())
    print(f"float64, {THREADS} thread(s), clock={clock}, {args.stat} of {rounds} rounds; "
          f"compiled "
          f"backend {_backend.instruction_set()}"
          + (f"; PyTorch {torch.__version__}" if torch is not None else "; no PyTorch")
          + (f"; JAX {jax.__version__}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
             if jax is not None else "; no JAX"))
    rows = []
    for call, shape in CASES:
        key = f"{call} {shape}"
        public, kernel = times[(key, "elman")], times[(key, "kernel")]
        row = [call, shape_text(shape), format_seconds(public), format_seconds(kernel),
               f"{public / kernel:.1f}x"]
        for peer in ("torch", "jax"):
            theirs = times.get((key, peer))
            row += [format_seconds(theirs), "-" if theirs is None else f"{theirs / public:.1f}x"]
        rows.append(row)
    print_table(["call", "(I,H,T,B)", "elman", "kernel", "elman/kernel", "torch",
                 "torch/elman", "jax", "jax/elman"], rows)


def shape_text(shape):
    return "(" + ",".join(str(s) for s in shape) + ")"


if __name__ == "__main__":
    main()
