"""Sonarium: `python main.py` opens the app; `python main.py COMMAND ...` runs the CLI
(`python main.py --help` lists the commands). The `sonarium` console script is the same."""

import sys

from cli.main import main

if __name__ == "__main__":
    sys.exit(main())
