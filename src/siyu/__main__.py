"""`python -m siyu ...`: the `siyu` command, where its script is not on PATH."""

from siyu.cli import app

app(prog_name="siyu")
