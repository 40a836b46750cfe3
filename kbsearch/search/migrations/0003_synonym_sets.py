"""Admin-curated synonym sets for the BM25 leg, and the revision row processes check their cache with."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('search', '0002_move_query_log_to_analytics'),
    ]

    operations = [
        migrations.CreateModel(
            name='SynonymRevision',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('number', models.BigIntegerField(default=0)),
                ('changed_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'verbose_name': 'synonym revision',
            },
        ),
        migrations.CreateModel(
            name='SynonymSet',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('equivalent', 'Equivalent: each phrase also finds the others'), ('one_way', 'One-way: the terms also find the expansions, not the reverse')], default='equivalent', max_length=16)),
                ('terms', models.TextField(help_text='One phrase per line, e.g. PRD, product requirements document, 产品需求文档. For a one-way set: the acronyms or words that bring in the expansions.')),
                ('expansions', models.TextField(blank=True, help_text='One-way sets only: one phrase per line, searched as well when a term above is.')),
                ('language', models.CharField(blank=True, choices=[('', 'Any language'), ('en', 'English (queries in Latin script)'), ('zh', 'Chinese'), ('ja', 'Japanese'), ('ko', 'Korean')], default='', help_text='Apply only to queries written in this language.', max_length=8)),
                ('enabled', models.BooleanField(default=True)),
                ('note', models.CharField(blank=True, help_text='Why the set exists (for other admins).', max_length=200)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'verbose_name': 'synonym set',
                'ordering': ['terms'],
            },
        ),
    ]
