"""The public calls beside the bare kernel call they end in, and PyTorch.

    python bench/bench_public_calls.py [--quick] [--rounds N] [--no-torch]

What a script that calls the model itself pays per call, float64, one thread:

* ``forward`` at (I, H, T, B) = (3, 4, 7, 1): ``model.forward(X)``;
* ``loss_and_grad`` at (3, 4, 7, 1) and (1, 50, 10, 1): ``model.loss_and_grad(X, Y)``;
* ``stream step`` at (1, 50, 1, 1): one step of the streaming idiom
  ``y, h = model.forward(x_t[None, :], h, return_state=True)``;
* ``predict`` at (3, 4, 7, 1): ``model.predict(X)``.

Beside each: ``kernel``, the compiled kernel function the call ends in, called
with arrays made ready beforehand (its own cost: acquiring the typed memoryviews,
plus the arithmetic), and ``torch``, the same computation in PyTorch (``nn.RNN`` +
``nn.Linear``; ``loss_and_grad`` is forward, ``MSELoss``, ``zero_grad`` and
``backward``; forward passes under ``torch.no_grad()``). Ratios: torch / elman
(how many times faster the public call is than PyTorch) and public call / kernel
(the overhead the Python surface adds). Cases run interleaved, medians of rounds
(see ``_common``).
"""

import argparse

from _common import pin_threads

pin_threads(default=1)

import numpy as np  # noqa: E402

import elman  # noqa: E402
from _common import (add_clock_argument, apply_clock_argument, format_seconds,  # noqa: E402
                     machine_line, print_table, time_interleaved)
from elman import _backend  # noqa: E402

# (call, (I, H, T, B))
CASES = [("forward", (3, 4, 7, 1)), ("loss_and_grad", (3, 4, 7, 1)),
         ("loss_and_grad", (1, 50, 10, 1)), ("stream step", (1, 50, 1, 1)),
         ("predict", (3, 4, 7, 1))]
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

    def kernel_loss_and_grad(n):
        for _ in range(n):
            kernels.loss_and_grad(theta, I, H, OUTPUT, 1, 0, True, X, Y, h0, lengths, grad)

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

    return public, kernel_forward


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round, no warm-up")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.05,
                        help="target time of one case in one round")
    parser.add_argument("--no-torch", action="store_true")
    add_clock_argument(parser)
    args = parser.parse_args(argv)
    args.threads = 1
    clock = apply_clock_argument(args)
    torch = None
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(1)
        except ImportError:
            torch = None
    if not _backend.compiled_available():
        raise SystemExit("the compiled kernels are not built; nothing to compare")

    cases = {}
    for call, shape in CASES:
        key = f"{call} {shape}"
        public, kernel = elman_case(call, shape)
        cases[(key, "elman")] = (public, 1)
        cases[(key, "kernel")] = (kernel, 1)
        if torch is not None:
            cases[(key, "torch")] = (torch_case(torch, call, shape), 1)
    rounds = 1 if args.quick else args.rounds
    with elman.use_backend("cython"):
        times = time_interleaved(cases, rounds, 0 if args.quick else args.seconds)

    print(machine_line())
    print(f"float64, 1 thread, clock={clock}, median of {rounds} rounds; compiled "
          f"backend {_backend.instruction_set()}"
          + (f"; PyTorch {torch.__version__}" if torch is not None else "; no PyTorch"))
    rows = []
    for call, shape in CASES:
        key = f"{call} {shape}"
        public, kernel = times[(key, "elman")], times[(key, "kernel")]
        theirs = times.get((key, "torch"))
        rows.append([call, shape_text(shape), format_seconds(public), format_seconds(kernel),
                     f"{public / kernel:.1f}x", format_seconds(theirs),
                     "-" if theirs is None else f"{theirs / public:.1f}x"])
    print_table(["call", "(I,H,T,B)", "elman", "kernel", "elman/kernel", "torch",
                 "torch/elman"], rows)


def shape_text(shape):
    return "(" + ",".join(str(s) for s in shape) + ")"


if __name__ == "__main__":
    main()
