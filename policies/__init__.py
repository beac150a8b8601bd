"""Policies: schema, YAML loading with line-numbered errors, the evaluator, versioned stores,
validation of backend names, semantic diff, replay / dry-run and shadow reports."""

from policies.decision import Decision, Reason, decide, merge
from policies.diff import PolicyChange, diff_policies
from policies.errors import (
    ApprovalRefused,
    InvalidTransition,
    PolicyError,
    PolicyIssue,
    PolicyUnavailable,
    PolicyValidationError,
    PolicyWorkflowError,
    VersionNotFound,
)
from policies.loader import PolicyBundle, default_policy_text, load_policy_file, parse_policy
from policies.redis_store import RedisPolicyStore
from policies.replay import ReplayReport, evaluate_record, replay_records, shadow_report
from policies.schema import Action, Policy, Rule, StageSection
from policies.store import FilePolicyStore, PolicyStore
from policies.validate import KnownBackends, validate_policy_text
from policies.versions import BASE_SCOPE, PolicyEvent, PolicyVersion, PolicyVersions

__all__ = [
    "BASE_SCOPE",
    "Action",
    "ApprovalRefused",
    "Decision",
    "FilePolicyStore",
    "InvalidTransition",
    "KnownBackends",
    "Policy",
    "PolicyBundle",
    "PolicyChange",
    "PolicyError",
    "PolicyEvent",
    "PolicyIssue",
    "PolicyStore",
    "PolicyUnavailable",
    "PolicyValidationError",
    "PolicyVersion",
    "PolicyVersions",
    "PolicyWorkflowError",
    "Reason",
    "RedisPolicyStore",
    "ReplayReport",
    "Rule",
    "StageSection",
    "VersionNotFound",
    "decide",
    "default_policy_text",
    "diff_policies",
    "evaluate_record",
    "load_policy_file",
    "merge",
    "parse_policy",
    "replay_records",
    "shadow_report",
    "validate_policy_text",
]
