"""The query log, feedback and clicks move here from the ``search`` app.

State only: the tables ``search`` created stay where they are (no data is copied or lost); the next
migration renames them to this app's names. Fresh databases run the same path.
"""
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('documents', '0001_initial'),
        ('search', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    state_operations = [
        migrations.CreateModel(
            name='QueryLog',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('query', models.TextField(help_text='The query after cleaning (control characters and extra spaces removed).')),
                ('query_normalized', models.TextField()),
                ('filters', models.JSONField(blank=True, default=dict)),
                ('mode', models.CharField(max_length=16)),
                ('channel', models.CharField(choices=[('api', 'API'), ('web', 'Search page')], max_length=8)),
                ('limit', models.PositiveIntegerField()),
                ('offset', models.PositiveIntegerField()),
                ('results', models.JSONField(blank=True, default=list)),
                ('result_count', models.PositiveIntegerField()),
                ('total', models.PositiveIntegerField(help_text='Documents the user may see that matched (the ranked pool).')),
                ('lexical_total', models.PositiveIntegerField(blank=True, help_text='Of those, documents that matched a query word, not only by meaning.', null=True)),
                ('latency_ms', models.FloatField(help_text='Search time including query encoding.')),
                ('created_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                ('user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'query log entry',
                'db_table': 'search_querylog',
                'verbose_name_plural': 'query log',
                'ordering': ['-created_at'],
            },
        ),
        migrations.CreateModel(
            name='TopQuery',
            fields=[
            ],
            options={
                'verbose_name': 'top query',
                'verbose_name_plural': 'top queries',
                'proxy': True,
                'indexes': [],
                'constraints': [],
            },
            bases=('analytics.querylog',),
        ),
        migrations.CreateModel(
            name='ZeroResultQuery',
            fields=[
            ],
            options={
                'verbose_name': 'zero-result query',
                'verbose_name_plural': 'zero-result queries',
                'proxy': True,
                'indexes': [],
                'constraints': [],
            },
            bases=('analytics.querylog',),
        ),
        migrations.CreateModel(
            name='Feedback',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('query', models.TextField()),
                ('rank', models.PositiveIntegerField(blank=True, null=True)),
                ('value', models.SmallIntegerField(choices=[(1, 'Up'), (-1, 'Down')])),
                ('created_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('document', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='documents.document')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('query_log', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='feedback', to='analytics.querylog')),
            ],
            options={
                'verbose_name_plural': 'feedback',
                'db_table': 'search_feedback',
                'ordering': ['-created_at'],
                'indexes': [models.Index(fields=['user', 'document'], name='search_feed_user_id_54f841_idx')],
            },
        ),
        migrations.CreateModel(
            name='Click',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('query', models.TextField()),
                ('rank', models.PositiveIntegerField()),
                ('created_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                ('document', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='documents.document')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('query_log', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='clicks', to='analytics.querylog')),
            ],
            options={
                'db_table': 'search_click',
                'ordering': ['-created_at'],
                'indexes': [models.Index(fields=['user', 'document'], name='search_clic_user_id_6f1ee9_idx')],
            },
        ),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=state_operations, database_operations=[]),
    ]
