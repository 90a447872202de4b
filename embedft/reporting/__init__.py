"""Reporting on committed results for reviewers: the pull-request report (verdict, metric and param diffs, plots,
stale results) and posting it as the pull request's one comment. Needs DVC, pydantic and PyYAML only: no torch.

Run as ``python -m embedft.reporting.pr_report --against main`` and ``python -m embedft.reporting.pr_comment``.
"""
