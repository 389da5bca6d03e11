"""``python -m training <command>``."""

from training.cli import main

main()
