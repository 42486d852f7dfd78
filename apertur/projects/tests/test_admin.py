"""The plan admin: staff may edit a plan's limits and displayed price, not its name, which is the key Stripe's
price ``lookup_key`` (``pro`` → Pro), ``apertur billing simulate --plan`` and the seeded price list match on."""

from __future__ import annotations

import pytest
from django.test import Client

from apertur.projects.models import Plan
from apertur.testing import PASSWORD, make_staff

pytestmark = pytest.mark.django_db


def test_a_plans_name_cannot_be_changed_in_the_admin_but_its_limits_can() -> None:
    plan = Plan.objects.get(name="Pro")
    staff = make_staff()
    browser = Client()
    assert browser.login(email=staff.email, password=PASSWORD)
    url = f"/admin/projects/plan/{plan.pk}/change/"
    assert 'name="name"' not in browser.get(url).content.decode()
    fields = {
        f.name: getattr(plan, f.name)
        for f in Plan._meta.concrete_fields
        if f.name not in {"id", "name"} and getattr(plan, f.name) is not None
    }
    fields["uploads_per_month"] = plan.uploads_per_month + 1
    response = browser.post(url, {**fields, "name": "Pro plan"})
    assert response.status_code == 302, response.content.decode()[:3000]
    plan.refresh_from_db()
    assert plan.name == "Pro" and fields["uploads_per_month"] == plan.uploads_per_month


def test_a_new_plan_is_named_in_the_admin() -> None:
    staff = make_staff()
    browser = Client()
    assert browser.login(email=staff.email, password=PASSWORD)
    assert 'name="name"' in browser.get("/admin/projects/plan/add/").content.decode()


def test_a_projects_owner_cannot_be_changed_in_the_admin() -> None:
    """Connections and tokens keep the user who authorized them: a new owner in one field left them answering
    to the old one, with no audit event."""
    from apertur.projects.services import create_project
    from apertur.testing import make_user

    owner, other = make_user(), make_user()
    project = create_project(owner=owner, name="Weddings")
    staff = make_staff()
    browser = Client()
    assert browser.login(email=staff.email, password=PASSWORD)
    url = f"/admin/projects/project/{project.pk}/change/"
    assert 'name="owner"' not in browser.get(url).content.decode()
    response = browser.post(url, {"name": "Weddings", "plan": project.plan_id, "owner": other.pk})
    assert response.status_code == 302, response.content.decode()[:3000]
    project.refresh_from_db()
    assert project.owner == owner


def test_a_project_with_payments_is_not_deleted_in_the_admin_and_a_deletion_is_audited() -> None:
    """Payments are billing records (refunds, disputes and commissions find them by invoice): deleting the
    customer's account is refused while they exist, and deleting the project took them with it, unrecorded."""
    import datetime as dt

    from apertur.core.models import AuditEvent
    from apertur.projects.models import Payment, Project
    from apertur.projects.services import create_project
    from apertur.testing import make_user

    owner = make_user()
    paid, empty = create_project(owner=owner, name="Weddings"), create_project(owner=owner, name="Drafts")
    Payment.objects.create(
        project=paid,
        customer=owner,
        external_id="in_1",
        amount_cents=2900,
        amount_cad_cents=2900,
        paid_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )
    staff = make_staff()
    browser = Client()
    browser.force_login(staff)
    refused = browser.post(f"/admin/projects/project/{paid.pk}/delete/", {"post": "yes"})
    assert refused.status_code == 200 and "protected" in refused.content.decode()
    listed = {"action": "delete_selected", "_selected_action": [paid.pk, empty.pk], "post": "yes", "index": 0}
    assert browser.post("/admin/projects/project/", listed).status_code == 200
    assert Payment.objects.filter(external_id="in_1").exists() and Project.objects.count() == 2

    assert browser.post(f"/admin/projects/project/{empty.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Project.objects.filter(pk=empty.pk).exists()
    event = AuditEvent.objects.get(action="project.deleted")
    assert (event.actor, event.object_id) == (staff, str(empty.pk))
    assert event.data["name"] == "Drafts" and event.data["owner"] == owner.email


def test_exchange_rates_added_changed_or_deleted_in_the_admin_are_audited() -> None:
    """A rate converts the Stripe payments of its currency into the CAD amounts commissions are 10 % of: each
    change is money-relevant and recorded with who made it and the rate before and after."""
    from decimal import Decimal

    from apertur.core.models import AuditEvent
    from apertur.projects.models import ExchangeRate

    staff = make_staff()
    browser = Client()
    browser.force_login(staff)
    added = browser.post("/admin/projects/exchangerate/add/", {"currency": "usd", "date": "2026-03-01", "rate": "1.35"})
    assert added.status_code == 302
    rate = ExchangeRate.objects.get()
    url = f"/admin/projects/exchangerate/{rate.pk}/"
    changed = browser.post(f"{url}change/", {"currency": "USD", "date": "2026-03-01", "rate": "1.3612"})
    assert changed.status_code == 302
    assert browser.post(f"{url}delete/", {"post": "yes"}).status_code == 302
    events = AuditEvent.objects.filter(object_type__contains="exchangerate").order_by("id")
    assert [(e.action, e.actor) for e in events] == [
        ("exchange_rate.added", staff),
        ("exchange_rate.changed", staff),
        ("exchange_rate.deleted", staff),
    ]
    first, second, _ = (event.data for event in events)
    assert (first["currency"], first["date"], Decimal(first["rate"])) == ("USD", "2026-03-01", Decimal("1.35"))
    assert (Decimal(second["before"]["rate"]), Decimal(second["after"]["rate"])) == (Decimal("1.35"), Decimal("1.3612"))


def test_a_plans_price_and_limits_changed_in_the_admin_are_audited() -> None:
    """A plan's limits apply at once to every project on it, and its price is what customers are shown: each
    change is recorded with the staff member, before and after."""
    from apertur.core.models import AuditEvent

    plan = Plan.objects.get(name="Pro")
    staff = make_staff()
    browser = Client()
    browser.force_login(staff)
    fields = {f.name: getattr(plan, f.name) for f in Plan._meta.concrete_fields if f.name not in {"id", "name"}}
    url = f"/admin/projects/plan/{plan.pk}/change/"
    assert browser.post(url, {**fields, "price_cents": plan.price_cents + 100}).status_code == 302
    event = AuditEvent.objects.get(action="plan.updated")
    assert event.actor == staff and event.object_id == str(plan.pk)
    assert event.data == {"price_cents": {"from": plan.price_cents, "to": plan.price_cents + 100}}


def test_a_project_edited_in_the_admin_follows_the_projects_rules_and_tells_who_listens() -> None:
    """Staff editing a project do what the owner's settings and a plan change do (services.update_settings,
    services.change_plan): the same rules (a name the owner already has in another case is refused next to its
    field, nothing saved), the audit events with the staff member as actor, and the ``plan.changed`` webhook event
    a connected app's server listens for."""
    from apertur.core.models import AuditEvent
    from apertur.projects.services import create_project
    from apertur.testing import make_user
    from apertur.webhooks.models import WebhookEvent

    owner = make_user()
    create_project(owner=owner, name="Weddings")
    drafts = create_project(owner=owner, name="Drafts")
    staff = make_staff()
    browser = Client()
    assert browser.login(email=staff.email, password=PASSWORD)
    url = f"/admin/projects/project/{drafts.pk}/change/"
    form = {
        "name": "Drafts",
        "plan": drafts.plan_id,
        "description": "",
        "default_session_days": "",
        "default_max_files": "",
    }

    taken = browser.post(url, {**form, "name": "WEDDINGS"})
    assert taken.status_code == 200 and "You already have a project with this name." in taken.content.decode()
    too_many = browser.post(url, {**form, "default_max_files": "100001"})
    assert too_many.status_code == 200 and "between 1 and 100,000" in too_many.content.decode()
    drafts.refresh_from_db()
    assert (drafts.name, drafts.default_max_files) == ("Drafts", None)
    assert not AuditEvent.objects.filter(action="project.settings_changed").exists()

    pro = Plan.objects.get(name="Pro")
    saved = browser.post(url, {**form, "name": "  Drafts   2026 ", "plan": pro.pk})
    assert saved.status_code == 302, saved.content.decode()[:3000]
    drafts.refresh_from_db()
    assert (drafts.name, drafts.plan) == ("Drafts 2026", pro)
    changed = AuditEvent.objects.get(action="project.settings_changed")
    assert changed.actor == staff and changed.data["after"]["name"] == "Drafts 2026"
    assert AuditEvent.objects.get(action="project.plan_changed").actor == staff
    event = WebhookEvent.objects.get(project=drafts, type="plan.changed")
    assert event.data["plan"]["to"] == "Pro"

    # Saved again unchanged: nothing to record.
    assert browser.post(url, {**form, "name": "Drafts 2026", "plan": pro.pk}).status_code == 302
    assert AuditEvent.objects.filter(action__in=["project.settings_changed", "project.plan_changed"]).count() == 2


def test_a_project_added_in_the_admin_follows_the_projects_rules() -> None:
    from apertur.core.models import AuditEvent
    from apertur.projects.services import create_project
    from apertur.testing import make_user

    owner = make_user()
    create_project(owner=owner, name="Weddings")
    staff = make_staff()
    browser = Client()
    assert browser.login(email=staff.email, password=PASSWORD)
    form = {"owner": owner.pk, "plan": Plan.objects.get(name="Free").pk, "description": ""}
    taken = browser.post("/admin/projects/project/add/", {**form, "name": "weddings"})
    assert taken.status_code == 200 and "You already have a project with this name." in taken.content.decode()
    added = browser.post("/admin/projects/project/add/", {**form, "name": " Portraits "})
    assert added.status_code == 302, added.content.decode()[:3000]
    project = owner.projects.get(name="Portraits")
    created = AuditEvent.objects.get(action="project.created", object_id=str(project.pk))
    assert created.actor == staff
