"""`python -m edge ...`: the edge commands without cli.py (and without TensorFlow)."""

from edge.cli import main

main()
