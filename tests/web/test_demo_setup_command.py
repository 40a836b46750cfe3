"""``manage.py demo_setup``: demo users in their groups, and the bundled sample knowledge base synced."""
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command

from kbsearch.documents.models import Document
from tests.knowledge_base import use_encoder

pytestmark = pytest.mark.django_db
DEMO = Path(settings.BASE_DIR) / "demo"


def demo_setup() -> str:
    out = StringIO()
    call_command("demo_setup", stdout=out)
    return out.getvalue()


def test_demo_setup_creates_the_users_and_syncs_the_sample_knowledge_base(index_backend, tiny_encoder, monkeypatch):
    use_encoder(monkeypatch, tiny_encoder)
    spec = yaml.safe_load((DEMO / "users.yaml").read_text(encoding="utf-8"))
    files = {
        str(path.relative_to(DEMO / "sample_kb"))
        for path in (DEMO / "sample_kb").rglob("*") if path.is_file() and path.name != "_access.yaml"
    }
    output = demo_setup()
    assert output.splitlines()[0].startswith("sample knowledge base: succeeded")
    assert "  ! " not in output  # no document was rejected
    names = [entry["username"] for entry in spec["users"]]
    assert output.splitlines()[-1] == f"demo users: {', '.join(names)} (and admin); password: {spec['password']}"
    for entry in spec["users"]:
        user = User.objects.get(username=entry["username"])
        assert set(user.groups.values_list("name", flat=True)) == set(entry.get("groups", [])), user
        assert user.check_password(spec["password"]) and not user.is_staff
    assert User.objects.get(username="admin").is_superuser
    assert set(Document.objects.filter(source__key="handbook").values_list("external_id", flat=True)) == files
    # Running it again changes nothing: same users, same documents, nothing re-embedded.
    documents = set(Document.objects.values_list("pk", "external_id", "content_hash", "version"))
    assert demo_setup().startswith("sample knowledge base: succeeded")
    assert User.objects.count() == len(names) + 1
    assert set(Document.objects.values_list("pk", "external_id", "content_hash", "version")) == documents
