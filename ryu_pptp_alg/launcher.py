"""``ryu-pptp-alg``: ``ryu-manager`` with the compatibility shim applied.

Every ``ryu-manager`` option works unchanged, further app modules may be
named, and ``ryu_pptp_alg.app`` is loaded unless it is named already.
"""

from __future__ import annotations

import sys

APP_MODULE = "ryu_pptp_alg.app"


def build_args(argv: list[str]) -> list[str]:
    """The ``ryu-manager`` arguments for our command line ``argv``."""
    if APP_MODULE in argv:
        return list(argv)
    return [APP_MODULE, *argv]


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
