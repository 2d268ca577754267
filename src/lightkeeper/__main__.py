"""Allow ``python -m lightkeeper``."""

from lightkeeper.cli.main import main

main()
