"""Policy texts shared by the tests (console, e2e workflow, dataset dry-run, workers, jobs)."""

from __future__ import annotations

__all__ = ["nude_blocker", "term_seed"]


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


def nude_blocker(policy_id: str, *, audio: bool = False) -> str:
    """The smallest useful policy: "nude" blocks as sexual (rule ``prompt-sexual``), nothing
    else is classified, so a test knows exactly which requests block and which rule fires."""
    text = f"""\
id: {policy_id}
prompt:
  classifiers: [term_list]
  terms:
    sexual: [nude]
  rules:
    - {{id: prompt-sexual, category: sexual, threshold: 0.5, action: block}}
output:
  image:
    classifiers: []
"""
    return text + ("  audio:\n    classifiers: []\n" if audio else "")
