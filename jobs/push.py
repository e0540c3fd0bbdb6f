"""Push a trained model directory to the Hugging Face Hub: `python -m jobs.push --model DIR --repo USER/NAME`.

Prints the commit URL. The token comes from --token, else HF_TOKEN, else `hf auth login`. Hub problems
(token, repo, network) are printed as one line on stderr with exit status 1 (`jobs._cli.run`).
"""

from __future__ import annotations

import argparse

from jobs._cli import add_quiet_arg, run
from jobs._cli import parser as new_parser


def parser() -> argparse.ArgumentParser:
    p = new_parser("python -m jobs.push", __doc__)
    p.add_argument("--model", required=True, help="model directory (config.json + model.safetensors)")
    p.add_argument("--repo", required=True, help="Hub repo id USER/NAME (created if missing)")
    p.add_argument("--private", action="store_true", help="create the repo private (ignored if it exists)")
    p.add_argument("--token", default=None, help="Hub token with write access (default: HF_TOKEN or login)")
    p.add_argument(
        "--endpoint", default=None, help="Hub URL (default: HF_ENDPOINT or https://huggingface.co)"
    )
    p.add_argument("--message", default=None, help="commit message")
    p.add_argument("--revision", default=None, help="branch to push to (created from main if missing)")
    add_quiet_arg(p, "print only the commit URL")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from learner.hub import push

    print(
        push(
            args.model,
            args.repo,
            private=args.private,
            token=args.token,
            endpoint=args.endpoint,
            commit_message=args.message,
            revision=args.revision,
        )
    )
    return 0


if __name__ == "__main__":
    run(main)
