"""Fill ``AuthorizationCode.connection`` for the codes in flight (see 0005)."""

from django.db import migrations
from django.db.models import OuterRef, Subquery


def link_codes(apps, schema_editor):  # type: ignore[no-untyped-def]
    AuthorizationCode = apps.get_model("oauth", "AuthorizationCode")
    Connection = apps.get_model("oauth", "Connection")
    db = schema_editor.connection.alias
    AuthorizationCode.objects.using(db).update(
        connection_id=Subquery(
            Connection.objects.using(db)
            .filter(app_id=OuterRef("app_id"), project_id=OuterRef("project_id"))
            .values("id")[:1]
        )
    )
    AuthorizationCode.objects.using(db).filter(connection__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("oauth", "0005_code_connection"),
    ]

    operations = [
        migrations.RunPython(link_codes, migrations.RunPython.noop),
    ]
