"""Authorization codes point at their connection (0005 adds the column, 0006 fills it, 0007 makes it required),
so the token endpoint reads both in one query.

Codes live ten minutes; the ones in flight during the upgrade get the connection of their app and project
(the one the consent created). A code without one could never be exchanged (the exchange requires a live
connection) and is deleted. Each step is its own migration: PostgreSQL refuses to index or alter a table in
the transaction that has just updated its rows under a deferred foreign key.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("oauth", "0004_token_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="authorizationcode",
            name="connection",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="oauth.connection"
            ),
        ),
    ]
