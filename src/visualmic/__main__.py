"""Run the command line: ``python -m visualmic``."""

from .cli import main

if __name__ == "__main__":
    main()
