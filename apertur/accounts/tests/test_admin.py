"""The user admin: a superuser can give a staff account the limited permissions the docs describe (e.g. the
*change* permission on Stripe events, or only the *view* permission on payouts) without a shell."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client

from apertur.accounts.models import User
from apertur.testing import PASSWORD, make_staff, make_user

pytestmark = pytest.mark.django_db


def test_a_superuser_can_give_a_staff_account_permissions_and_groups_in_the_admin() -> None:
    admin = make_staff()
    staff = make_user("ops-viewer@example.com", is_staff=True)
    group = Group.objects.create(name="Payout viewers")
    view_payout = Permission.objects.get(codename="view_payout")
    browser = Client()
    assert browser.login(email=admin.email, password=PASSWORD)
    url = f"/admin/accounts/user/{staff.pk}/change/"
    html = browser.get(url).content.decode()
    assert 'name="user_permissions"' in html and 'name="groups"' in html
    response = browser.post(
        url,
        {
            "email": staff.email,
            "is_active": "on",
            "is_staff": "on",
            "groups": [str(group.pk)],
            "user_permissions": [str(view_payout.pk)],
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    staff = User.objects.get(pk=staff.pk)
    assert staff.has_perm("payouts.view_payout") and not staff.has_perm("payouts.change_payout")
    assert list(staff.groups.all()) == [group]


def test_deleting_accounts_in_the_admin_is_audited_with_who_did_it() -> None:
    from apertur.core.models import AuditEvent
    from apertur.projects.services import create_project

    admin = make_staff()
    one, two = make_user("one@example.com"), make_user("two@example.com")
    create_project(owner=one, name="Weddings")
    browser = Client()
    assert browser.login(email=admin.email, password=PASSWORD)
    assert browser.post(f"/admin/accounts/user/{one.pk}/delete/", {"post": "yes"}).status_code == 302
    event = AuditEvent.objects.get(action="user.deleted")
    assert (event.actor_id, event.object_id, event.data) == (
        admin.pk,
        str(one.pk),
        {"email": "one@example.com", "public_id": one.public_id, "projects": 1},
    )
    listed = {"action": "delete_selected", "_selected_action": [two.pk], "post": "yes", "index": 0}
    assert browser.post("/admin/accounts/user/", listed).status_code == 302
    assert not User.objects.filter(email__in=["one@example.com", "two@example.com"]).exists()
    emails = sorted(e.data["email"] for e in AuditEvent.objects.filter(action="user.deleted"))
    assert emails == ["one@example.com", "two@example.com"]


def test_an_address_typed_in_the_admin_is_stored_as_logins_look_it_up() -> None:
    """Logins compare addresses lower-cased (``normalize_email``): an account added or edited in the admin with
    capitals could never log in, and ``ADA@example.com`` beside ``ada@example.com`` made two accounts for one
    mailbox."""
    admin = make_staff()
    make_user("ada@example.com")
    browser = Client()
    assert browser.login(email=admin.email, password=PASSWORD)
    added = browser.post(
        "/admin/accounts/user/add/",
        {"email": " Bob@Example.COM ", "password1": "a-brand-new-secret", "password2": "a-brand-new-secret"},
    )
    assert added.status_code == 302, added.content.decode()[:2000]
    bob = User.objects.get(email="bob@example.com")
    assert Client().login(email="bob@example.com", password="a-brand-new-secret")
    twin = browser.post(
        "/admin/accounts/user/add/",
        {"email": "ADA@example.com", "password1": "a-brand-new-secret", "password2": "a-brand-new-secret"},
    )
    assert twin.status_code == 200 and "already exists" in twin.content.decode()
    assert User.objects.filter(email__iexact="ada@example.com").count() == 1
    changed = browser.post(
        f"/admin/accounts/user/{bob.pk}/change/", {"email": "Bob.New@Example.com", "is_active": "on"}
    )
    assert changed.status_code == 302, changed.content.decode()[:2000]
    assert User.objects.get(pk=bob.pk).email == "bob.new@example.com"


def test_an_email_typed_in_the_admin_is_stored_as_the_site_stores_it_and_stays_one_account() -> None:
    """Addresses are compared trimmed and lowercased (``normalize_email``): one typed "New.Person@Example.COM" in
    the admin could never log in, and "Cust@example.com" became a second account beside cust@example.com."""
    browser = Client()
    browser.force_login(make_staff())
    password = {"password1": "a-long-password-1", "password2": "a-long-password-1", "usable_password": "true"}
    added = browser.post("/admin/accounts/user/add/", {"email": " New.Person@Example.COM ", **password})
    assert added.status_code == 302
    assert User.objects.filter(email="new.person@example.com").exists()
    assert Client().login(email="new.person@example.com", password="a-long-password-1")

    make_user("cust@example.com")
    twin = browser.post("/admin/accounts/user/add/", {"email": "Cust@Example.com", **password})
    assert twin.status_code == 200 and "already exists" in twin.content.decode()
    assert User.objects.filter(email__iexact="cust@example.com").count() == 1

    person = User.objects.get(email="new.person@example.com")
    url = f"/admin/accounts/user/{person.pk}/change/"
    moved = browser.post(url, {"email": "Renamed@Example.com", "is_active": "on"})
    assert moved.status_code == 302
    person.refresh_from_db()
    assert person.email == "renamed@example.com"
    taken = browser.post(url, {"email": "CUST@example.com", "is_active": "on"})
    assert taken.status_code == 200 and "already exists" in taken.content.decode()


def _limited_staff(*codenames: str) -> Client:
    staff = make_user("helpdesk@example.com", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    browser = Client()
    browser.force_login(staff)
    return browser


def test_staff_who_may_change_accounts_cannot_make_themselves_or_anyone_superuser() -> None:
    """The change permission on accounts is for helping customers (an address, a confirmation, a deactivation);
    without the superuser's own checks it granted every other permission, to the staff member first."""
    browser = _limited_staff("view_user", "change_user")
    me = User.objects.get(email="helpdesk@example.com")
    customer = make_user("cust@example.com")
    delete_payout = Permission.objects.get(codename="delete_payout")
    for user in (me, customer):
        url = f"/admin/accounts/user/{user.pk}/change/"
        form = browser.get(url).context["adminform"].form
        assert not {"is_superuser", "is_staff", "groups", "user_permissions"} & set(form.fields)
        grab = {
            "email": user.email,
            "is_active": "on",
            "is_staff": "on",
            "is_superuser": "on",
            "user_permissions": [str(delete_payout.pk)],
        }
        assert browser.post(url, grab).status_code == 302
        user = User.objects.get(pk=user.pk)
        assert not user.is_superuser and not user.has_perm("payouts.delete_payout")
    assert not User.objects.get(pk=customer.pk).is_staff


def test_staff_who_may_change_accounts_cannot_change_a_superusers() -> None:
    """A superuser's address or password changed by them would hand over the superuser's account."""
    browser = _limited_staff("view_user", "change_user")
    boss = make_staff("boss@example.com")
    url = f"/admin/accounts/user/{boss.pk}/change/"
    assert browser.post(url, {"email": "helpdesk-owned@example.com", "is_active": "on"}).status_code == 403
    assert browser.get(f"/admin/accounts/user/{boss.pk}/password/").status_code == 403
    assert User.objects.get(pk=boss.pk).email == "boss@example.com"


def test_staff_who_may_delete_accounts_cannot_delete_a_superuser_even_in_a_list_action() -> None:
    browser = _limited_staff("view_user", "change_user", "delete_user")
    boss = make_staff("boss@example.com")
    assert browser.post(f"/admin/accounts/user/{boss.pk}/delete/", {"post": "yes"}).status_code == 403
    listed = {"action": "delete_selected", "_selected_action": [boss.pk], "post": "yes", "index": 0}
    browser.post("/admin/accounts/user/", listed)
    assert User.objects.filter(pk=boss.pk).exists()


def test_a_password_set_by_staff_in_the_admin_is_audited_and_the_owner_is_told(
    django_capture_on_commit_callbacks: Any,
) -> None:
    """As every new password is (ASVS 2.2.3): the owner learns at once, with the way to take the account back,
    and the audit log names the staff member who set it."""
    from django.core import mail

    from apertur.core.models import AuditEvent

    staff = make_staff()
    customer = make_user("cust@example.com")
    browser = Client()
    browser.force_login(staff)
    new = "a-brand-new-password-7"
    url = f"/admin/accounts/user/{customer.pk}/password/"
    with django_capture_on_commit_callbacks(execute=True):
        done = browser.post(url, {"password1": new, "password2": new, "usable_password": "true"})
    assert done.status_code == 302
    assert Client().login(email="cust@example.com", password=new)
    event = AuditEvent.objects.get(action="user.password_changed", object_id=str(customer.pk))
    assert event.actor == staff and event.data == {"via": "staff"}
    told = [m for m in mail.outbox if m.to == ["cust@example.com"]]
    assert [m.subject for m in told] == ["Your Apertur password was changed"]
    assert "by Apertur staff" in told[0].body


def test_an_account_changed_in_the_admin_is_audited_with_what_changed_and_who_changed_it() -> None:
    """Deactivating an account, changing its address or its rights is security-relevant: recorded like the
    site's own changes, with the staff member as actor and each field before and after."""
    from apertur.core.models import AuditEvent

    staff = make_staff()
    customer = make_user("cust@example.com")
    view_payout = Permission.objects.get(codename="view_payout")
    browser = Client()
    browser.force_login(staff)
    url = f"/admin/accounts/user/{customer.pk}/change/"
    changed = browser.post(
        url, {"email": "new@example.com", "is_staff": "on", "user_permissions": [str(view_payout.pk)]}
    )
    assert changed.status_code == 302
    event = AuditEvent.objects.get(action="user.updated", object_id=str(customer.pk))
    assert event.actor == staff
    assert event.data["email"] == {"from": "cust@example.com", "to": "new@example.com"}
    assert event.data["is_active"] == {"from": True, "to": False}
    assert event.data["is_staff"] == {"from": False, "to": True}
    assert event.data["user_permissions"] == {"added": ["payouts.view_payout"], "removed": []}
    same = {"email": "new@example.com", "is_staff": "on", "user_permissions": [str(view_payout.pk)]}
    assert browser.post(url, same).status_code == 302
    assert AuditEvent.objects.filter(action="user.updated").count() == 1


def test_staff_who_may_change_groups_cannot_grant_their_own_group_more_rights() -> None:
    """Through a group they belong to, the same escalation as ticking their own permissions."""
    group = Group.objects.create(name="Helpdesk")
    browser = _limited_staff("view_group", "change_group")
    User.objects.get(email="helpdesk@example.com").groups.add(group)
    delete_payout = Permission.objects.get(codename="delete_payout")
    url = f"/admin/auth/group/{group.pk}/change/"
    assert "permissions" not in browser.get(url).context["adminform"].form.fields
    browser.post(url, {"name": "Helpdesk", "permissions": [str(delete_payout.pk)]})
    assert not group.permissions.exists()
    assert not User.objects.get(email="helpdesk@example.com").has_perm("payouts.delete_payout")
