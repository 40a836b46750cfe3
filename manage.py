#!/usr/bin/env python
"""Django's command-line entry point for kbsearch."""
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kbsearch.settings")
    # Idle OpenMP threads must sleep, not spin: spinning starves the other core (see embeddings/).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
