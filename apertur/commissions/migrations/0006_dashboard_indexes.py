"""The partner dashboard's indexes (issue 10): ``id`` joins the covering index's key (the earnings table's order, and
the payout detail's join to its links, read from the index), and two small partial indexes for the rare entries the
dashboard singles out (reversals and clawbacks; re-earnings of won disputes)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('commissions', '0005_unused_indexes'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='commissionentry',
            name='commission_partner_paid_at',
        ),
        migrations.AddIndex(
            model_name='commissionentry',
            index=models.Index(fields=['partner', 'paid_at', 'id'], include=('available_at', 'amount_cents', 'paid_out_at', 'kind', 'customer', 'payment'), name='commission_partner_paid_at'),
        ),
        migrations.AddIndex(
            model_name='commissionentry',
            index=models.Index(condition=models.Q(('kind__in', ['reversal', 'clawback'])), fields=['partner', 'payment'], name='commission_taken_back'),
        ),
        migrations.AddIndex(
            model_name='commissionentry',
            index=models.Index(condition=models.Q(('kind', 'earned'), models.Q(('source_key__startswith', 'earned:'), _negated=True)), fields=['partner'], name='commission_re_earned'),
        ),
    ]
