"""What the partners app announces to the apps built on it (which import partners, never the reverse)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent by services.approve() inside its transaction, with ``partner``: a receiver's writes commit or roll back with
# the approval. The referrals app gives the partner its first referral link here.
partner_approved = Signal()
