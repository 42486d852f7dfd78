"""The import rules of ARCHITECTURE.md §3, checked on the real import graph of ``apertur``.

grimp reads every ``import`` statement of every module, those inside functions included (a lazy import is
still a dependency). The rules:

- ``core`` imports no other part of ``apertur``;
- no domain imports ``api/``, nor the entry points (``config``, ``cli``, ``demo``);
- a ``models`` module imports no services, selectors or web module (``models`` → ``core`` only);
- a domain's logic (every module that is not a web module: models, services, selectors, tasks, signals, apps…)
  imports no web module, and imports another domain only if that domain comes before its own in
  :data:`DOMAIN_ORDER` ("nothing imports upward": ``commissions`` reads ``referrals`` and ``projects``,
  ``payouts`` reads ``commissions``, never the other way). Where a lower domain must make a higher one act, it
  sends a signal the higher one connects to (``oauth.signals``, ``accounts.signals``, ``projects.signals``);
- a web module (views, portal pages, urls, forms, admin, decorators) is the edge that composes pages: it may call
  the services and selectors of any domain, as ``api/`` does, but never ``api/``; a view or portal view records no
  audit event itself (§7: the service that makes a change records it).

Migrations and tests are not checked: a migration is history, a test may reach anything it tests.
"""

from __future__ import annotations

import grimp
import pytest

pytestmark = pytest.mark.own_database

PACKAGE = "apertur"

#: The domains, lowest first: each may read only those before it.
DOMAIN_ORDER: tuple[str, ...] = (
    "core",
    "integrations.paypal",  # the PayPal REST client: HTTP and core only
    "accounts",
    "projects",
    "partners",
    "oauth",  # apps belong to partners, connections to projects
    "webhooks",  # endpoints belong to projects; an app's endpoints stop on oauth.signals.app_lost_project
    "uploads",  # uploads emit project events through webhooks
    "referrals",  # attribution reads oauth connections
    "commissions",  # reads referrals and projects
    "payouts",  # reads commissions
    "integrations.stripe",  # billing intake: writes payments, which earn commissions
)

#: The layers above every domain: they may import any domain, no domain imports them.
ENTRY_POINTS = ("api", "config", "cli", "demo", "__main__", "testing", "chromium")

#: Module names (the last part) that make up a domain's web edge.
WEB_MODULES = frozenset({"views", "portal_views", "urls", "portal_urls", "forms", "admin", "decorators"})

#: The modules that answer requests: they parse, call one service or selector and render, and write nothing
#: themselves (the admin's save and delete hooks, core.admin.AuditedDelete, do record what staff change).
PAGE_MODULES = frozenset({"views", "portal_views"})

#: Imports the rules would refuse, each kept on purpose: (importer, imported) → why.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("apertur.integrations.stripe.checks", "apertur.config.settings"): (
        "settings derives the development STRIPE_WEBHOOK_SECRET with dev_stripe_webhook_secret before any app "
        "loads; the deploy check compares against that same derivation instead of writing it a second time"
    ),
}


def part_of(module: str) -> str:
    """The domain or entry point a module belongs to: ``apertur.payouts.services`` → ``payouts``."""
    names = module.split(".")
    if len(names) == 1:
        return "__init__"
    if names[1] == "integrations" and len(names) > 2:
        return f"integrations.{names[2]}"
    return names[1]


def is_checked(module: str) -> bool:
    return not any(name in {"tests", "migrations"} for name in module.split("."))


def kind(module: str) -> str:
    """What a module is, by its last name: ``models``, ``services``, ``views``…"""
    return module.rsplit(".", 1)[-1]


def is_web(module: str) -> bool:
    """A domain's web edge (core's views and forms are shared helpers every layer may use)."""
    return kind(module) in WEB_MODULES and part_of(module) != "core"


def violation(importer: str, imported: str) -> str | None:
    """Why ``importer`` may not import ``imported`` (None when it may)."""
    source, target = part_of(importer), part_of(imported)
    if source not in DOMAIN_ORDER:
        return None  # an entry point: it may import anything
    if target in ENTRY_POINTS:
        return f"a domain imports {target}"
    if source == "core":
        return None if target in {"core", "__init__"} else "core imports a domain"
    if kind(importer) == "models" and (is_web(imported) or kind(imported) in {"services", "selectors"}):
        return "a models module imports a service, selector or web module"
    if kind(importer) in PAGE_MODULES and imported == "apertur.core.audit":
        return "a view records an audit event: the service that makes the change records it (§7)"
    if is_web(importer):
        return None
    if is_web(imported):
        return "a domain's logic imports a web module"
    if target in DOMAIN_ORDER and DOMAIN_ORDER.index(target) > DOMAIN_ORDER.index(source):
        return f"{source} imports upward into {target}"
    return None


def violations(graph: grimp.ImportGraph) -> list[str]:
    found = []
    for importer in sorted(graph.modules):
        if not is_checked(importer):
            continue
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if not is_checked(imported) or (importer, imported) in EXCEPTIONS:
                continue
            why = violation(importer, imported)
            if why:
                lines = sorted(d["line_number"] for d in graph.get_import_details(importer=importer, imported=imported))
                found.append(f"{importer} (line {', '.join(map(str, lines))}) -> {imported}: {why}")
    return found


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(PACKAGE, cache_dir=None)


def test_every_domain_is_placed(graph: grimp.ImportGraph) -> None:
    """A new app must be given its place in the order (or be named an entry point) before it is checked."""
    parts = {part_of(m) for m in graph.modules} - {"__init__", "integrations"}
    assert parts - set(DOMAIN_ORDER) - set(ENTRY_POINTS) == set()


def test_imports_follow_the_layers(graph: grimp.ImportGraph) -> None:
    found = violations(graph)
    assert not found, "imports against ARCHITECTURE.md §3:\n" + "\n".join(found)


def test_every_exception_is_still_needed(graph: grimp.ImportGraph) -> None:
    """An exception whose import is gone goes too: the list says what the code does."""
    stale = [pair for pair in EXCEPTIONS if not graph.direct_import_exists(importer=pair[0], imported=pair[1])]
    assert stale == []


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("apertur.core.money", "apertur.commissions.models"),
        ("apertur.projects.services", "apertur.api.v1"),
        ("apertur.projects.models", "apertur.projects.services"),
        ("apertur.payouts.models", "apertur.commissions.selectors"),
        ("apertur.commissions.services", "apertur.payouts.models"),
        ("apertur.referrals.selectors", "apertur.commissions.selectors"),
        ("apertur.payouts.services", "apertur.payouts.views"),
        ("apertur.projects.services", "apertur.webhooks.services"),
        ("apertur.oauth.tasks", "apertur.cli"),
        ("apertur.oauth.views", "apertur.core.audit"),
    ],
)
def test_a_forbidden_import_is_refused(importer: str, imported: str) -> None:
    assert violation(importer, imported) is not None


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("apertur.payouts.services", "apertur.commissions.selectors"),
        ("apertur.commissions.selectors", "apertur.referrals.models"),
        ("apertur.partners.views", "apertur.payouts.services"),  # the portal composes pages
        ("apertur.api.v1", "apertur.uploads.services"),
        ("apertur.cli", "apertur.payouts.services"),
        ("apertur.uploads.services", "apertur.uploads.models"),
        ("apertur.partners.admin", "apertur.core.audit"),
    ],
)
def test_an_allowed_import_passes(importer: str, imported: str) -> None:
    assert violation(importer, imported) is None
