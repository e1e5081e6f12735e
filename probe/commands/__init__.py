"""One module per ``probe`` subcommand; each exposes ``register(subparsers)``."""
