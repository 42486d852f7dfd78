"""``webhook.test`` stopped being subscribable (only "Send test event" sends it, to that one endpoint): endpoints
created before keep it in ``events``, where the API showed it back and a PATCH re-sending the list was refused.
Take it out. An endpoint that listed nothing else is left with ``[]`` (it wants no event), which is what it
received before: only the test events sent to it, which still arrive."""

from django.db import migrations


def drop_webhook_test(apps, schema_editor):  # type: ignore[no-untyped-def]
    WebhookEndpoint = apps.get_model("webhooks", "WebhookEndpoint")
    for endpoint in WebhookEndpoint.objects.only("pk", "events").iterator():
        events = endpoint.events if isinstance(endpoint.events, list) else []
        if "webhook.test" in events:
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(events=[e for e in events if e != "webhook.test"])


class Migration(migrations.Migration):
    dependencies = [("webhooks", "0002_previous_secret")]

    operations = [migrations.RunPython(drop_webhook_test, migrations.RunPython.noop)]
