"""SharePoint libraries and site pages as places: each file is in its library (the drive id,
labelled ``site > library``), each page in its site's pages; two libraries stay two places, and a
renamed library is relabelled by the permission sync without touching the index."""
import pytest

from connectors.models import SyncRun
from connectors.services import source_sync
from kbsearch.documents.models import Document

pytestmark = pytest.mark.django_db


def places(source) -> dict[str, tuple[str, str]]:
    return {d.title: (d.place_key, d.place_label) for d in Document.objects.filter(source=source)}


def test_files_are_in_their_library_and_pages_in_their_sites_pages(hr, sharepoint_source, tiny_encoder, index_backend):
    hr.tenant.page_add(site=hr.site, name="Home.aspx", title="Welcome", web_parts=["<p>Dental plan</p>"])
    forms = hr.tenant.drive_add(site=hr.site, name="Forms")
    hr.tenant.file_add(parent=hr.tenant.root(forms), name="expenses.txt", content="Expense form", author=hr.alice)
    source = sharepoint_source(include_pages=True)
    run = source_sync(source=source, encoder=tiny_encoder, index=index_backend)
    assert run.status == SyncRun.Status.SUCCEEDED, run.errors
    documents = (hr.drive.id, "Human Resources > Documents")
    assert places(source) == {
        "Human Resources > Documents > readme.txt": documents,
        "Human Resources > Documents > Policies > leave.txt": documents,
        "Human Resources > Documents > Policies > Private > salaries.txt": documents,
        "Human Resources > Forms > expenses.txt": (forms.id, "Human Resources > Forms"),
        "Human Resources > Site Pages > Welcome": (f"pages:{hr.site.id}", "Human Resources > Site Pages"),
    }
    held = index_backend.indexed_documents(list(Document.objects.values_list("pk", flat=True)))
    assert {place for entry in held.values() for place in entry.places} == {
        f"sp:{hr.drive.id}", f"sp:{forms.id}", f"sp:pages:{hr.site.id}",
    }


def test_a_renamed_library_is_relabelled_by_the_permission_sync(hr, sharepoint_source, tiny_encoder, index_backend,
                                                                 monkeypatch):
    source = sharepoint_source()
    source_sync(source=source, encoder=tiny_encoder, index=index_backend)
    hr.drive.name = "Shared Documents"
    monkeypatch.setattr(type(index_backend), "update_places_many",
                        lambda self, places: pytest.fail(f"the index was asked to move {places}"))
    run = source_sync(source=source, encoder=tiny_encoder, index=index_backend, permissions=True)
    assert run.counts["place_updated"] == 3, run.errors
    assert set(places(source).values()) == {(hr.drive.id, "Human Resources > Shared Documents")}
