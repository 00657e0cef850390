"""``python -m elman``: the same as the ``elman`` command (see :mod:`elman.cli`)."""

from elman.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
