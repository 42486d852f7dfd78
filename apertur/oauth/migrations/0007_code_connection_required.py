import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("oauth", "0006_link_codes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="authorizationcode",
            name="connection",
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+", to="oauth.connection"),
        ),
    ]
