"""One module per ``probe`` subcommand, each with ``register(subparsers)`` and the handler it sets.

A handler turns its arguments into keyword arguments of the library (only those the user gave:
the library declares the defaults) and prints the outcome; the library never sees argparse.
"""
