"""`python -m jobs JOB [flags]`: the `earshot` command without installing it."""

from jobs.cli import console

console()
