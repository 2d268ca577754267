"""The ``lightkeeper`` command line (click)."""
