"""Proxy models for two admin pages: the relevance dashboard and the queries needing attention."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0002_rename_tables_from_search'),
    ]

    operations = [
        migrations.CreateModel(
            name='QueryNeedingAttention',
            fields=[
            ],
            options={
                'verbose_name': 'query needing attention',
                'verbose_name_plural': 'queries needing attention',
                'proxy': True,
                'indexes': [],
                'constraints': [],
            },
            bases=('analytics.querylog',),
        ),
        migrations.CreateModel(
            name='RelevanceDashboard',
            fields=[
            ],
            options={
                'verbose_name': 'relevance dashboard',
                'verbose_name_plural': 'relevance dashboard',
                'proxy': True,
                'indexes': [],
                'constraints': [],
            },
            bases=('analytics.querylog',),
        ),
    ]
