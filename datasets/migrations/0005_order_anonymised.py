"""GDPR erasure: an order under the bookkeeping duty loses its customer link (anonymised) but stays."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("datasets", "0004_rls_orders_pageviews_reports")]

    operations = [
        migrations.AlterField(
            model_name="order",
            name="customer",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="orders",
                to="datasets.customer",
            ),
        ),
        migrations.AddField(
            model_name="order",
            name="anonymised",
            field=models.BooleanField(default=False, editable=False),
        ),
    ]
