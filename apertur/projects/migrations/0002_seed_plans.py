from django.db import migrations


def seed(apps, schema_editor):
    from apertur.projects.plans import PLANS

    Plan = apps.get_model("projects", "Plan")
    for spec in PLANS:
        Plan.objects.update_or_create(name=spec["name"], defaults={k: v for k, v in spec.items() if k != "name"})


class Migration(migrations.Migration):
    dependencies = [("projects", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
