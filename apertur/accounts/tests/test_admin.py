"""The user admin: a superuser can give a staff account the limited permissions the docs describe (e.g. the
*change* permission on Stripe events, or only the *view* permission on payouts) without a shell."""

from __future__ import annotations

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
