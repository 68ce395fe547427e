"""The ``fastrnn`` command: ``python -m fastrnn bench`` and ``python -m fastrnn check``.

``bench`` times fastrnn beside the numpy reference and PyTorch (see ``fastrnn._bench``);
``check`` runs every public call against the reference (see ``fastrnn._selfcheck``).
"""
import argparse
import sys

__all__ = ["main"]


def main(argv=None):
    """Parse ``argv`` (default ``sys.argv[1:]``), run the subcommand, return its exit status."""
    from fastrnn import _bench, _selfcheck

    parser = argparse.ArgumentParser(
        prog="fastrnn", description="fastrnn: fast, reference-checked RNN/LSTM forward passes")
    sub = parser.add_subparsers(dest="command", metavar="{bench,check}")
    sub.required = True
    _bench.add_arguments(sub.add_parser(
        "bench", help="time fastrnn against the numpy reference and PyTorch",
        description=_bench.__doc__.split("\n")[0]))
    _selfcheck.add_arguments(sub.add_parser(
        "check", help="compare every public call with the numpy reference",
        description=_selfcheck.__doc__.split("\n")[0]))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
