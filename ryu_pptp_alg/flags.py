"""Command-line options, registered the Ryu way (oslo.config on ``ryu.cfg.CONF``).

``ryu-pptp-alg`` registers them before parsing. With stock ``ryu-manager``
pass this file with ``--user-flags`` so ``--pptp-config`` is understood, or set
``RYU_PPTP_CONFIG``, or put ``pptp_config = PATH`` in a ``--config-file``.
"""

from __future__ import annotations

import os

from ryu import cfg

OPTS = [
    cfg.StrOpt(
        "pptp-config",
        default=os.environ.get("RYU_PPTP_CONFIG"),
        help="YAML file describing the NAT gateways (default: $RYU_PPTP_CONFIG)",
    ),
]


def register(conf: cfg.ConfigOpts | None = None) -> None:
    """Register our options once; after parsing, as config-file options."""
    conf = cfg.CONF if conf is None else conf
    if "pptp_config" in conf:
        return
    try:
        conf.register_cli_opts(OPTS)
    except cfg.ArgsAlreadyParsedError:
        conf.register_opts(OPTS)


# Loaded by ``ryu-manager --user-flags`` as a plain file: register on import.
register()
