"""The query log, feedback and clicks moved to the ``analytics`` app: forget them here (state only;
the tables are kept and renamed by ``analytics``)."""
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('search', '0001_initial'),
        ('analytics', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name='Click'),
                migrations.DeleteModel(name='Feedback'),
                migrations.DeleteModel(name='TopQuery'),
                migrations.DeleteModel(name='ZeroResultQuery'),
                migrations.DeleteModel(name='QueryLog'),
            ],
            database_operations=[],
        ),
    ]
