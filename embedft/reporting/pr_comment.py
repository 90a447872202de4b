"""Post a report as the pull request's one review comment, editing it on later runs instead of adding another.

``python -m embedft.reporting.pr_comment --pr 12 --body-file report.md`` uses the GitHub CLI (``gh api``), which reads
its token from ``GH_TOKEN`` and the repository from ``GH_REPO`` (or the git remote). The comment is found by
:data:`embedft.reporting.pr_report.MARKER`, the hidden HTML comment every report starts with, so a push to the pull request
updates the same comment, and comments that merely quote the report are left alone.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from embedft.core import PipelineError, run_stage
from embedft.reporting.pr_report import MARKER

GITHUB_COMMENT_LIMIT = 65_536
"""Characters GitHub accepts in one comment body."""


def gh_api(arguments: list[str]) -> str:
    """Run ``gh api <arguments>`` and return its standard output.

    Raises:
        PipelineError: when ``gh`` is missing or the call fails, with gh's message (e.g. a 403 for a fork's token).
    """
    try:
        result = subprocess.run(["gh", "api", *arguments], capture_output=True, text=True)
    except FileNotFoundError:
        raise PipelineError("the GitHub CLI `gh` is not installed (https://cli.github.com)") from None
    if result.returncode != 0:
        raise PipelineError(f"gh api {' '.join(arguments)}: {result.stderr.strip() or f'exit status {result.returncode}'}")
    return result.stdout


def parse_pages(text: str) -> list[dict]:
    """The items of ``gh api --paginate`` output, which is one JSON array per page written back to back."""
    decoder, items, position = json.JSONDecoder(), [], 0
    while position < len(text):
        if text[position].isspace():
            position += 1
            continue
        page, position = decoder.raw_decode(text, position)
        items.extend(page if isinstance(page, list) else [page])
    return items


def find_report_comment(comments: list[dict]) -> int | None:
    """The id of the first comment whose body starts with the report marker; None when there is none."""
    for comment in comments:
        if str(comment.get("body", "")).lstrip().startswith(MARKER):
            return int(comment["id"])
    return None


def fit_comment(body: str) -> str:
    """The body, cut to GitHub's limit with a note when it is longer."""
    if len(body) <= GITHUB_COMMENT_LIMIT:
        return body
    note = "\n\n…cut to fit a GitHub comment: the workflow's job summary has the whole report.\n"
    return body[: GITHUB_COMMENT_LIMIT - len(note)] + note


def post_report(pr: int, body: str) -> str:
    """Create the report comment on pull request ``pr``, or edit the existing one; returns 'created' or 'updated'."""
    if not body.lstrip().startswith(MARKER):
        raise PipelineError(f"the comment body must start with the report marker {MARKER} "
                            "(make it with python -m embedft.reporting.pr_report)")
    comments = parse_pages(gh_api(["--paginate", f"repos/{{owner}}/{{repo}}/issues/{pr}/comments"]))
    existing = find_report_comment(comments)
    with tempfile.TemporaryDirectory() as folder:
        body_file = Path(folder) / "body.md"
        body_file.write_text(fit_comment(body), encoding="utf-8")
        if existing is None:
            gh_api(["--method", "POST", f"repos/{{owner}}/{{repo}}/issues/{pr}/comments", "-F", f"body=@{body_file}"])
            return "created"
        gh_api(["--method", "PATCH", f"repos/{{owner}}/{{repo}}/issues/comments/{existing}", "-F", f"body=@{body_file}"])
        return "updated"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Create or update the pull request's report comment with gh.")
    parser.add_argument("--pr", type=int, required=True, help="pull request number")
    parser.add_argument("--body-file", type=Path, required=True, help="the report (python -m embedft.reporting.pr_report --output ...)")
    args = parser.parse_args(argv)
    try:
        body = args.body_file.read_text(encoding="utf-8")
    except OSError as error:
        raise PipelineError(f"{args.body_file}: cannot read the report: {error.strerror}") from None
    print(f"pr_comment: {post_report(args.pr, body)} the report comment on pull request #{args.pr}")


if __name__ == "__main__":
    run_stage(main)
