"""Command-line jobs: `python -m jobs.<name> --help`. Each parses arguments and calls one learner/
function."""
