"""Policies: schema, YAML loading with line-numbered errors, stores and the evaluator."""

from policies.decision import Decision, Reason, decide, merge
from policies.errors import PolicyError, PolicyIssue, PolicyValidationError
from policies.loader import PolicyBundle, default_policy_text, load_policy_file, parse_policy
from policies.schema import Action, Policy, Rule, StageSection
from policies.store import FilePolicyStore, PolicyStore

__all__ = [
    "Action",
    "Decision",
    "FilePolicyStore",
    "Policy",
    "PolicyBundle",
    "PolicyError",
    "PolicyIssue",
    "PolicyStore",
    "PolicyValidationError",
    "Reason",
    "Rule",
    "StageSection",
    "decide",
    "default_policy_text",
    "load_policy_file",
    "merge",
    "parse_policy",
]
