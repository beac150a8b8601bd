"""Policy texts shared by the workflow tests (console, e2e workflow, dataset dry-run)."""

from __future__ import annotations

__all__ = ["term_seed"]


def term_seed(policy_id: str) -> str:
    """A small term-list policy: "nude" blocks as sexual, "lighthouse" scores illicit but is
    allowed, so a candidate that only changes that action changes decisions on recorded scores."""
    return f"""\
id: {policy_id}
prompt:
  classifiers: [term_list]
  terms:
    sexual: [nude]
    illicit: [lighthouse]
  rules:
    - {{id: prompt-sexual, category: sexual, threshold: 0.5, action: block}}
    - {{id: prompt-illicit, category: illicit, threshold: 0.5, action: allow}}
output:
  image:
    classifiers: []
"""
