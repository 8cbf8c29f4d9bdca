"""Sonarium's command line: a thin shell over engine.library.Library.

Each command opens the library, calls one engine method and prints (cli/output.py).
The parser (cli/parser.py) declares the global options once, from engine.config.
"""

from engine.config import prepare_process

prepare_process()  # before anything imports numpy: the console script and main.py come here
