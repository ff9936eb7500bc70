"""``ryu-pptp-alg``: ``ryu-manager`` with the compatibility shim applied.

Every ``ryu-manager`` option works unchanged, further app modules may be
named, and ``ryu_pptp_alg.app`` is loaded unless it is named already.
"""

from __future__ import annotations

import sys

APP_MODULE = "ryu_pptp_alg.app"


def build_args(argv: list[str]) -> list[str]:
    """The ``ryu-manager`` arguments for our command line ``argv``.

    The app goes in through ``--app-lists`` (an option, so it cannot split the
    positional app names the user gives); a user's own ``--app-lists`` is kept.
    """
    if any(APP_MODULE in arg.split("=")[-1].split(",") for arg in argv):
        return list(argv)
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--app-lists" and i + 1 < len(args):
            args[i + 1] = f"{APP_MODULE},{args[i + 1]}"
            return args
        if arg.startswith("--app-lists="):
            args[i] = f"--app-lists={APP_MODULE},{arg.split('=', 1)[1]}"
            return args
    return ["--app-lists", APP_MODULE, *args]


def main(argv: list[str] | None = None) -> int | None:
    from ryu_pptp_alg import compat

    compat.apply()
    # Register --pptp-config before ryu-manager parses the command line.
    from ryu_pptp_alg import flags

    flags.register()
    from ryu.cmd import manager

    args = build_args(sys.argv[1:] if argv is None else argv)
    return manager.main(args=args, prog="ryu-pptp-alg")


if __name__ == "__main__":
    sys.exit(main())
