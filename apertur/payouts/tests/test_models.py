"""The payout links: a payout run writes one link per entry it pays, so the table keeps only the indexes its
queries use and no database foreign key to the ledger; and the links (with their payout's ``sent_at``) are what
makes an entry paid (``commissions.models.paid_entry_ids``, which reads them by these names)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.models import ProtectedError

from apertur.commissions.models import CommissionEntry, paid_entry_ids
from apertur.payouts.models import Payout, PayoutEntry, PayoutStatus
from apertur.payouts.tests.helpers import at
from apertur.testing import make_partner


def _indexes(constraints: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in constraints.values() if (c["index"] or c["unique"]) and not c["primary_key"]]


@pytest.mark.django_db
def test_payout_links_keep_only_the_indexes_their_queries_use() -> None:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "payouts_payoutentry")
    indexed = sorted(tuple(c["columns"]) for c in _indexes(constraints))
    # Besides the primary key: the pair (lookups by payout use its first column) and an entry's live link.
    assert indexed == sorted([("payout_id", "entry_id"), ("entry_id",)]), indexed
    # The partial unique index is the rule "one live payout per entry": a migration must never lose it.
    live = [c for c in constraints.values() if c["columns"] == ["entry_id"] and (c["index"] or c["unique"])]
    assert len(live) == 1 and live[0]["unique"], live


def _entries(partner: Any, n: int) -> list[CommissionEntry]:
    from apertur.projects.models import Payment, Plan, Project
    from apertur.testing import make_user

    customer = make_user(f"links-{partner.pk}@example.com")
    plan = Plan.objects.create(
        name=f"Links {partner.pk}", price_cents=100, uploads_per_month=1, storage_bytes=1, max_active_sessions=1,
        max_file_bytes=1,
    )  # fmt: skip
    project = Project.objects.create(owner=customer, name="P", plan=plan)
    entries = []
    for i in range(n):
        payment = Payment.objects.create(
            project=project, customer=customer, external_id=f"in_l{partner.pk}_{i}", amount_cents=10_000,
            paid_at=at(2026, 3, 1 + i),
        )  # fmt: skip
        entries.append(
            CommissionEntry.objects.create(
                partner=partner,
                payment=payment,
                paid_at=payment.paid_at,
                customer=customer,
                kind="earned",
                amount_cents=1_000,
                available_at=at(2026, 3, 31),
                source_key=f"earned:{payment.pk}",
            )
        )
    return entries


@pytest.mark.django_db
def test_an_entry_is_paid_while_a_sent_payout_links_it() -> None:
    partner, other = make_partner(), make_partner()
    first, second = _entries(partner, 2)
    (elsewhere,) = _entries(other, 1)

    def paid(partner_id: int | None = None) -> set[int]:
        return set(
            CommissionEntry.objects.filter(pk__in=paid_entry_ids(partner_id=partner_id)).values_list("pk", flat=True)
        )

    payout = Payout.objects.create(partner=partner, period="2026-04", amount_cents=2_000, sender_batch_id="b-1")
    PayoutEntry.objects.bulk_create([PayoutEntry(payout=payout, entry=e) for e in (first, second)])
    assert paid() == set()  # linked to a payout PayPal has not accepted yet: still unpaid
    Payout.objects.filter(pk=payout.pk).update(status=PayoutStatus.SENT, sent_at=at(2026, 4, 15))
    assert paid() == {first.pk, second.pk} == paid(partner.pk)
    theirs = Payout.objects.create(
        partner=other, period="2026-04", amount_cents=1_000, sender_batch_id="b-2", sent_at=at(2026, 4, 15)
    )
    PayoutEntry.objects.create(payout=theirs, entry=elsewhere)
    assert paid(partner.pk) == {first.pk, second.pk} and paid(other.pk) == {elsewhere.pk}
    assert set(CommissionEntry.objects.unpaid().values_list("pk", flat=True)) == set()
    # The money came back: the link is released (kept for the history) and the entry is unpaid again.
    PayoutEntry.objects.filter(payout=payout, entry=second).update(released_at=at(2026, 4, 20))
    assert paid(partner.pk) == {first.pk}
    assert list(CommissionEntry.objects.unpaid().values_list("pk", flat=True)) == [second.pk]


@pytest.mark.django_db
def test_a_linked_entry_cannot_be_deleted_though_the_link_has_no_database_constraint() -> None:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "payouts_payoutentry")
    keys = {tuple(c["columns"]): c["foreign_key"] for c in constraints.values() if c["foreign_key"]}
    assert keys == {("payout_id",): ("payouts_payout", "id")}, keys
    partner = make_partner()
    (entry,) = _entries(partner, 1)
    payout = Payout.objects.create(partner=partner, period="2026-04", amount_cents=1_000, sender_batch_id="b-3")
    PayoutEntry.objects.create(payout=payout, entry=entry)
    with pytest.raises(ProtectedError):
        entry.delete()
    assert CommissionEntry.objects.filter(pk=entry.pk).exists()
