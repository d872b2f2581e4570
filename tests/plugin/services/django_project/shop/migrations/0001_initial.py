"""Products, and the catalogue's first product; each run of this migration leaves a line in
$SHOP_MIGRATION_LOG, so the tests can count how often the migrations ran."""

import os

from django.db import migrations, models


def seed(apps, schema_editor):
    apps.get_model("shop", "Product").objects.create(name="teapot")
    with open(os.environ["SHOP_MIGRATION_LOG"], "a") as log:
        log.write(f"{schema_editor.connection.settings_dict['NAME']}\n")


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name="Product",
            fields=[
                ("id", models.AutoField(primary_key=True, serialize=False)),
                ("name", models.CharField(max_length=50, unique=True)),
            ],
        ),
        migrations.RunPython(seed, migrations.RunPython.noop),
    ]
