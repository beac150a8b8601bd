"""Dry-run and shadow reports of a candidate version against the audit log in Redis.

The candidate is resolved the way the store would enforce it: a base candidate applies to every
tenant on the base policy and, merged, to every tenant policy that ``extends: base``; a tenant
candidate applies to that tenant only. Records come from the newest ``limit`` of the audit log.
"""

from __future__ import annotations

from audit.query import tail
from audit.record import AuditRecord
from policies.loader import PolicyBundle
from policies.replay import ReplayReport, Resolver, replay_records, shadow_report
from policies.validate import validate_policy_text
from policies.versions import BASE_SCOPE, PolicyVersions

__all__ = ["candidate_resolver", "dry_run", "recent_records", "shadow_summary"]


async def candidate_resolver(versions: PolicyVersions, scope: str, text: str) -> Resolver:
    """Which bundle the candidate ``text`` (for ``scope``) would enforce for each tenant."""
    if scope != BASE_SCOPE:
        candidate = await versions.resolve_text(scope, text, source=f"{scope} (candidate)")
        return lambda tenant: candidate if tenant == scope else None
    base = validate_policy_text(text, source="base (candidate)", known=versions.known)
    own: dict[str, PolicyBundle | None] = {}
    for tenant in await versions.scopes():
        if tenant == BASE_SCOPE:
            continue
        active = await versions.active(tenant)
        if active is None:
            continue
        tenant_bundle = validate_policy_text(
            active.text, source=f"{tenant} v{active.number}", known=versions.known, base=base
        )
        # a complete policy of its own: a base change does not reach that tenant
        own[tenant] = tenant_bundle if tenant_bundle.policy.extends == "base" else None
    return lambda tenant: own.get(tenant, base)


async def recent_records(versions: PolicyVersions, scope: str, limit: int) -> list[AuditRecord]:
    tenant = None if scope == BASE_SCOPE else scope
    return await tail(versions.redis, tenant=tenant, count=limit)


async def dry_run(versions: PolicyVersions, scope: str, text: str, *, limit: int) -> ReplayReport:
    """Evaluate ``text`` on the newest ``limit`` records; report the decisions it changes."""
    resolver = await candidate_resolver(versions, scope, text)
    return replay_records(await recent_records(versions, scope, limit), resolver)


async def shadow_summary(
    versions: PolicyVersions, scope: str, *, number: int | None, limit: int
) -> ReplayReport:
    """What the shadow version ``number`` (default: the current shadow) decided differently."""
    if number is None:
        number = await versions.pointer(scope, "shadow")
    if number is None:
        return ReplayReport(revision="")
    version = await versions.get(scope, number)
    resolver = await candidate_resolver(versions, scope, version.text)
    records = await recent_records(versions, scope, limit)
    revisions = {bundle.revision for r in records if (bundle := resolver(r.tenant)) is not None}
    report = ReplayReport(revision=version.revision)
    for revision in revisions or {version.revision}:
        part = shadow_report(records, revision, resolver)
        report.evaluated += part.evaluated
        report.changed.extend(part.changed)
        report.by_transition.update(part.by_transition)
        report.by_category.update(part.by_category)
    return report
