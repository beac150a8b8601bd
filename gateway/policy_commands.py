"""``genguard policy …``: the compliance workflow from the command line (parity with
``/admin/policies/*``).

    validate FILE            schema + registered backends, every problem with its line
    schema / reference       JSON Schema for editors / the generated Markdown reference
    diff A B                 semantic diff; A and B are files or versions (v3, active)
    propose FILE --reason R  a new version (proposed); approve N; activate N
    rollback [N]             the version active before the current one (or N), one step
    history                  versions and events
    dry-run FILE|vN          replay the newest audit records under the candidate
    dry-run --version N --dataset FILE --text-col C --label-col L
                             run the candidate's and the enforced prompt stage (classifiers
                             included) over a labelled prompt file; changed decisions + metrics
    shadow start N | stop | report

Actions are taken as ``cli:<os user>`` and audited like the HTTP ones, so the approver of a
version proposed from the CLI must be another user.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from policies.diff import diff_policies
from policies.dryrun import dry_run, shadow_summary
from policies.errors import PolicyError, PolicyValidationError
from policies.loader import PolicyBundle, default_policy_text
from policies.reference import GENERATED_BEGIN, GENERATED_END, json_schema, reference_markdown
from policies.replay import ReplayReport
from policies.validate import validate_policy_text
from policies.versions import BASE_SCOPE, PolicyVersions

if TYPE_CHECKING:
    from gateway.settings import Settings

__all__ = ["add_policy_commands", "run_offline", "run_online"]

OFFLINE = {"validate", "schema", "reference"}


def add_policy_commands(policy: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def scoped(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = policy.add_parser(name, help=help_text)
        parser.add_argument("--scope", default=BASE_SCOPE, help="'base' (default) or a tenant")
        return parser

    validate = scoped("validate", "validate a policy file (a tenant's: with --scope)")
    validate.add_argument("file", type=Path)
    schema = policy.add_parser("schema", help="print the policy JSON Schema (for editors)")
    schema.add_argument("--out", type=Path)
    reference = policy.add_parser("reference", help="print the generated policy reference")
    reference.add_argument("--write", type=Path, help="update the generated part of this page")
    diff = scoped("diff", "semantic diff between two files or versions (v3, active)")
    diff.add_argument("before")
    diff.add_argument("after")
    propose = scoped("propose", "propose a new version")
    propose.add_argument("file", type=Path)
    propose.add_argument("--reason", required=True)
    for name, help_text in (
        ("approve", "approve a proposed version (not your own)"),
        ("activate", "enforce an approved version"),
    ):
        step = scoped(name, help_text)
        step.add_argument("version", type=int)
        step.add_argument("--reason", default="")
    rollback = scoped("rollback", "enforce an earlier version again (default: the previous)")
    rollback.add_argument("version", type=int, nargs="?")
    rollback.add_argument("--reason", default="")
    scoped("history", "versions and events")
    dry = scoped(
        "dry-run", "a candidate on recent audit records, or (--dataset) on a labelled prompt file"
    )
    dry.add_argument("candidate", nargs="?", help="a policy file or a version (v3)")
    dry.add_argument("--version", type=int, help="the candidate version (same as vN)")
    dry.add_argument("--limit", type=int, help="audit records (default 500), or first N prompts")
    dry.add_argument("--json", action="store_true")
    dry.add_argument("--dataset", type=Path, help="labelled prompts: .csv, .tsv or .jsonl")
    dry.add_argument("--text-col", default="text", help="the column holding the prompt")
    dry.add_argument("--label-col", default="label", help="the column holding the label")
    dry.add_argument(
        "--positive",
        default="1,true,unsafe,hateful,positive,yes",
        help="comma-separated label values that mean unsafe (case-blind)",
    )
    dry.add_argument("--positive-min", type=float, help="numeric labels: unsafe from this value")
    dry.add_argument("--group-col", help="report recall / FPR per value of this column")
    dry.add_argument("--batch-size", type=int, default=16, help="prompts per classifier call")
    shadow = scoped("shadow", "evaluate a version in shadow on live traffic")
    shadow.add_argument("shadow_command", choices=["start", "stop", "report"])
    shadow.add_argument("version", type=int, nargs="?")
    shadow.add_argument("--limit", type=int, default=1000)
    shadow.add_argument("--json", action="store_true")


def run_offline(args: argparse.Namespace) -> int:
    command = args.policy_command
    if command == "schema":
        text = json.dumps(json_schema(), indent=2) + "\n"
        if args.out:
            args.out.write_text(text)
        else:
            sys.stdout.write(text)
        return 0
    if command == "reference":
        generated = reference_markdown()
        if args.write is None:
            sys.stdout.write(generated)
            return 0
        page = args.write.read_text()
        head, _, rest = page.partition(GENERATED_BEGIN)
        _, _, tail = rest.partition(GENERATED_END)
        args.write.write_text(f"{head}{GENERATED_BEGIN}\n\n{generated}\n{GENERATED_END}{tail}")
        print(f"updated {args.write}")
        return 0
    path: Path = args.file
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        print(f"invalid policy {path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if "extends:" in text:
        return -1  # needs the active base policy from Redis
    try:
        bundle = validate_policy_text(text, source=str(path))
    except PolicyValidationError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{path}: valid (policy {bundle.id!r}, revision {bundle.revision})")
    return 0


async def run_online(
    args: argparse.Namespace,
    versions: PolicyVersions,
    *,
    seed: Path | None,
    settings: Settings | None = None,
) -> int:
    """Run a command on the versioned store; an empty store is first seeded (version 1) from
    ``seed`` or the packaged default, as a starting gateway would."""
    try:
        if seed is not None:
            await versions.seed(await asyncio.to_thread(seed.read_text, "utf-8"), source=str(seed))
        else:
            await versions.seed(default_policy_text(), source="policies/default.yaml")
        if args.policy_command == "dry-run" and args.dataset is not None:
            if settings is None:
                raise PolicyError("a dry-run on a data set needs the gateway settings")
            return await _dataset_dry_run(args, versions, settings)
        return await _run(args, versions)
    except PolicyValidationError as exc:
        print(exc, file=sys.stderr)
        return 1
    except PolicyError as exc:
        print(f"genguard: {exc}", file=sys.stderr)
        return 1


async def _run(args: argparse.Namespace, versions: PolicyVersions) -> int:
    command, scope, actor = args.policy_command, getattr(args, "scope", BASE_SCOPE), args.actor
    if command == "validate":
        bundle = await versions.resolve_text(
            scope, args.file.read_text("utf-8"), source=str(args.file)
        )
        print(f"{args.file}: valid (policy {bundle.id!r}, revision {bundle.revision})")
    elif command == "diff":
        before = await _candidate(versions, scope, args.before)
        after = await _candidate(versions, scope, args.after)
        changes = diff_policies(before.policy, after.policy)
        for change in changes:
            print(f"{change.kind:<13} {change.summary}")
        if not changes:
            print("no semantic difference")
    elif command == "propose":
        version = await versions.propose(
            scope, args.file.read_text("utf-8"), author=actor, reason=args.reason
        )
        print(
            f"proposed {scope} v{version.number} ({version.revision}); it needs approval "
            "by a policy approver other than you"
        )
    elif command == "approve":
        version = await versions.approve(scope, args.version, approver=actor)
        print(f"approved {scope} v{version.number} (proposed by {version.author})")
    elif command == "activate":
        version = await versions.activate(scope, args.version, actor=actor, reason=args.reason)
        print(f"activated {scope} v{version.number} ({version.revision})")
    elif command == "rollback":
        version = await versions.rollback(scope, args.version, actor=actor, reason=args.reason)
        print(f"rolled back {scope} to v{version.number} ({version.revision})")
    elif command == "history":
        active = await versions.pointer(scope, "active")
        shadow = await versions.pointer(scope, "shadow")
        for v in await versions.versions(scope):
            marks = "".join(
                [" ACTIVE" if v.number == active else "", " SHADOW" if v.number == shadow else ""]
            )
            approved = f" approved by {v.approved_by}" if v.approved_by else ""
            print(
                f"v{v.number:<4} {v.state:<9} {v.created_at} by {v.author}{approved}{marks}"
                f"  {v.reason}"
            )
    elif command == "dry-run":
        text = await _candidate_text(versions, scope, _dry_run_spec(args))
        limit = 500 if args.limit is None else args.limit
        _print_report(await dry_run(versions, scope, text, limit=limit), args.json)
    elif command == "shadow":
        if args.shadow_command == "report":
            report = await shadow_summary(versions, scope, number=args.version, limit=args.limit)
            _print_report(report, args.json)
        elif args.shadow_command == "start":
            if args.version is None:
                print("genguard: 'shadow start' needs a version number", file=sys.stderr)
                return 2
            await versions.set_shadow(scope, args.version, actor=actor)
            print(f"{scope} v{args.version} now runs in shadow")
        else:
            await versions.set_shadow(scope, None, actor=actor)
            print(f"shadow evaluation of {scope} stopped")
    return 0


def _dry_run_spec(args: argparse.Namespace) -> str:
    if (args.candidate is None) == (args.version is None):
        raise PolicyError("give the candidate: a policy file or vN, or --version N")
    return str(args.candidate) if args.version is None else f"v{args.version}"


async def _dataset_dry_run(
    args: argparse.Namespace, versions: PolicyVersions, settings: Settings
) -> int:
    """The candidate's prompt stage beside the enforced one on a labelled prompt file."""
    from gateway.backends import ClassifierBackends
    from gateway.dataset_dryrun import dry_run_dataset
    from gateway.evaluation import DatasetError, load_labelled_prompts

    scope = args.scope
    candidate = await _candidate(versions, scope, _dry_run_spec(args))
    enforced = await _candidate(
        versions, scope if await versions.active(scope) else BASE_SCOPE, "active"
    )
    try:
        prompts = load_labelled_prompts(
            args.dataset,
            text_col=args.text_col,
            label_col=args.label_col,
            positive=[v.strip() for v in args.positive.split(",") if v.strip()],
            positive_min=args.positive_min,
            group_col=args.group_col,
        )
    except DatasetError as exc:
        print(f"genguard: {exc}", file=sys.stderr)
        return 1
    report = await asyncio.to_thread(
        dry_run_dataset,
        enforced,
        candidate,
        ClassifierBackends(settings),
        prompts[: args.limit],
        dataset=args.dataset.name,
        batch_size=max(1, args.batch_size),
    )
    print(json.dumps(report.to_json(), indent=2) if args.json else report.to_text())
    return 0


async def _candidate_text(versions: PolicyVersions, scope: str, spec: str) -> str:
    if spec == "active":
        active = await versions.active(scope)
        if active is None:
            raise PolicyError(f"{scope!r} has no active version")
        return active.text
    if spec.startswith("v") and spec[1:].isdigit():
        return (await versions.get(scope, int(spec[1:]))).text
    return await asyncio.to_thread(Path(spec).read_text, "utf-8")


async def _candidate(versions: PolicyVersions, scope: str, spec: str) -> PolicyBundle:
    text = await _candidate_text(versions, scope, spec)
    return await versions.resolve_text(scope, text, source=spec)


def _print_report(report: ReplayReport, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
        return
    print(f"evaluated {report.evaluated} decisions; {len(report.changed)} would change")
    for transition, count in sorted(report.by_transition.items()):
        print(f"  {transition}: {count}")
    for category, count in sorted(report.by_category.items()):
        print(f"  category {category}: {count}")
    for change in report.changed[:20]:
        print(
            f"  {change.decision_id} {change.route} {change.enforced} → {change.candidate} "
            f"({', '.join(change.categories)}) {change.prompt or ''}".rstrip()
        )
