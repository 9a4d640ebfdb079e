"""One module per ``bridge`` subcommand; each defines ``add_parser`` and ``run``."""
