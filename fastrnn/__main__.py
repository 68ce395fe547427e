"""The ``fastrnn`` command: ``fastrnn bench``, ``fastrnn check``, ``fastrnn --version``.

``bench`` times fastrnn beside the numpy reference and its peers (see ``fastrnn._bench``);
``check`` runs every public call against the reference (see ``fastrnn._selfcheck``).
Exit status: 0 success, 1 a check (or a benchmark's output comparison) failed, 2 bad
arguments or a missing optional dependency (one line on stderr, before any work).
"""
import sys

__all__ = ["main"]


def main(argv=None):
    """Parse ``argv`` (default ``sys.argv[1:]``), run the subcommand, return its exit status."""
    import fastrnn
    from fastrnn import _selfcheck
    from fastrnn._bench import cli as bench_cli

    parser = bench_cli.Parser(
        prog="fastrnn",
        description="fastrnn: fast, reference-checked recurrent networks (RNN, LSTM, GRU) on the "
                    "CPU: the lessons' forward and backward passes, packed models, stacks")
    parser.add_argument("--version", action="version", version=f"fastrnn {fastrnn.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{bench,check}")
    sub.required = True
    bench_cli.add_arguments(sub.add_parser(
        "bench", help="time fastrnn against the numpy reference and its peers"))
    check = _selfcheck.add_arguments(sub.add_parser(
        "check", help="compare every public call with the numpy reference",
        description="Compare every public call (the drop-in forward and backward "
                    "functions, the models' forward, step and loss_and_grads, bidirectional "
                    "stacks) with the numpy reference over a spread of shapes, both dtypes; "
                    "exit status 1 when any differs beyond the tolerances."))
    for action in check._actions:
        if action.dest == "seed":       # a negative seed is numpy's traceback otherwise
            action.type = bench_cli.int_at_least(0)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
