from __future__ import annotations

import pytest
from django.test import Client

from apertur.accounts.errors import InvalidPassword
from apertur.accounts.models import User
from apertur.projects import selectors, services
from apertur.projects.errors import InvalidProjectName, ProjectNameTaken, UnknownPlan
from apertur.projects.models import Plan, Project
from apertur.testing import make_user

pytestmark = pytest.mark.django_db


def test_plans_are_seeded_in_cad_cents() -> None:
    plans = {p.name: p for p in Plan.objects.all()}
    assert set(plans) == {"Free", "Pro", "Business"}
    assert plans["Free"].price_cents == 0 and plans["Pro"].price_cents > 0
    assert all(p.currency == "CAD" for p in plans.values())
    assert plans["Pro"].uploads_per_month > plans["Free"].uploads_per_month
    assert plans["Pro"].as_json()["name"] == "Pro"


def test_plan_lookup_is_case_insensitive_and_explains_misses() -> None:
    assert selectors.plan_by_name("pro").name == "Pro"
    with pytest.raises(UnknownPlan, match="Plans: Free, Pro, Business"):
        selectors.plan_by_name("Platinum")


def test_user_can_have_several_projects_on_different_plans() -> None:
    user = make_user()
    services.create_project(owner=user, name="Weddings", plan=selectors.plan_by_name("Pro"))
    services.create_project(owner=user, name="Team")
    assert [(p.name, p.plan.name) for p in selectors.project_list(owner=user)] == [
        ("Weddings", "Pro"),
        ("Team", "Free"),
    ]


def test_project_name_rules() -> None:
    user = make_user()
    services.create_project(owner=user, name="Weddings")
    with pytest.raises(ProjectNameTaken):
        services.create_project(owner=user, name="weddings")
    with pytest.raises(InvalidProjectName):
        services.create_project(owner=user, name="   ")
    assert Project.objects.count() == 1
    services.create_project(owner=make_user(), name="Weddings")  # names are per owner


def test_create_customer_is_all_or_nothing() -> None:
    with pytest.raises(UnknownPlan):
        services.create_customer(email="a@example.com", password="correct-horse-battery", plan_name="Gold")
    with pytest.raises(InvalidPassword):
        services.create_customer(email="a@example.com", password="x")
    with pytest.raises(InvalidProjectName):
        services.create_customer(email="a@example.com", password="correct-horse-battery", project_name="")
    assert User.objects.count() == 0 and Project.objects.count() == 0


def test_project_pages() -> None:
    user = make_user()
    client = Client()
    client.force_login(user)
    response = client.post("/projects/", {"name": "Weddings"})
    project = Project.objects.get(owner=user)
    assert response["Location"] == f"/projects/{project.public_id}/"
    assert "Weddings" in client.get("/projects/").content.decode()
    assert client.get(f"/projects/{project.public_id}/").status_code == 200
    other = Client()
    other.force_login(make_user())
    assert other.get(f"/projects/{project.public_id}/").status_code == 404
    bad = client.post("/projects/", {"name": "weddings"})
    assert bad.status_code == 400 and "already have a project" in bad.content.decode()


def test_change_plan_is_audited_and_announced() -> None:
    from apertur.core.models import AuditEvent
    from apertur.webhooks.models import WebhookEvent

    project = services.create_project(owner=make_user(), name="Weddings")
    services.change_plan(project=project, plan=selectors.plan_by_name("Business"))
    project.refresh_from_db()
    assert project.plan.name == "Business"
    event = WebhookEvent.objects.get(type="plan.changed")
    assert event.data["plan"]["from"] == "Free" and event.data["plan"]["to"] == "Business"
    assert AuditEvent.objects.filter(action="project.plan_changed").count() == 1
    services.change_plan(project=project, plan=selectors.plan_by_name("Business"))  # no change, no event
    assert WebhookEvent.objects.filter(type="plan.changed").count() == 1


def test_staff_changing_the_plan_in_admin_goes_through_the_service() -> None:
    from apertur.testing import make_staff
    from apertur.webhooks.models import WebhookEvent

    owner = make_user()
    project = services.create_project(owner=owner, name="Weddings")
    admin = Client()
    admin.force_login(make_staff())
    response = admin.post(
        f"/admin/projects/project/{project.pk}/change/",
        {"owner": owner.pk, "name": "Weddings", "plan": selectors.plan_by_name("Pro").pk, "description": ""},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    project.refresh_from_db()
    assert project.plan.name == "Pro"
    assert WebhookEvent.objects.filter(type="plan.changed", project=project).count() == 1


def test_a_description_is_measured_as_it_is_stored_without_its_surrounding_spaces() -> None:
    """500 characters and the line break a paste or a textarea adds were refused as 501, though 500 are stored."""
    from apertur.projects.errors import InvalidProjectSettings
    from apertur.projects.services import update_settings

    project = services.create_project(owner=make_user(), name="Weddings")
    update_settings(project=project, description="x" * 500 + "\n")
    project.refresh_from_db()
    assert project.description == "x" * 500
    with pytest.raises(InvalidProjectSettings):
        update_settings(project=project, description="x" * 501)
