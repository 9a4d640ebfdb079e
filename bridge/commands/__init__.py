"""One module per ``bridge`` subcommand.

Each defines ``add_arguments(parser)`` and ``run(args) -> int``, and imports heavy packages
inside ``run`` only.
"""
