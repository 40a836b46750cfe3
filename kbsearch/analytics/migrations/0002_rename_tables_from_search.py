"""Rename the moved tables and indexes to this app's names, and carry the content types over so
admin permissions granted on the query log (``search.view_querylog``) keep working as
``analytics.view_querylog``."""

from django.db import migrations


MOVED_MODELS = ("querylog", "topquery", "zeroresultquery", "feedback", "click")


def move_content_types(apps, schema_editor):
    content_type = apps.get_model("contenttypes", "ContentType")
    for model in MOVED_MODELS:
        old = content_type.objects.filter(app_label="search", model=model).first()
        if old is None:
            continue
        if content_type.objects.filter(app_label="analytics", model=model).exists():
            old.delete()
        else:
            old.app_label = "analytics"
            old.save(update_fields=["app_label"])


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0001_initial'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        migrations.RenameIndex(
            model_name='click',
            new_name='analytics_c_user_id_d743bc_idx',
            old_name='search_clic_user_id_6f1ee9_idx',
        ),
        migrations.RenameIndex(
            model_name='feedback',
            new_name='analytics_f_user_id_337236_idx',
            old_name='search_feed_user_id_54f841_idx',
        ),
        migrations.AlterModelTable(
            name='click',
            table=None,
        ),
        migrations.AlterModelTable(
            name='feedback',
            table=None,
        ),
        migrations.AlterModelTable(
            name='querylog',
            table=None,
        ),
        migrations.RunPython(move_content_types, migrations.RunPython.noop),
    ]
