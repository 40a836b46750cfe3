"""Reads behind the permissions pages: why a user sees a document, and who sees it.

Both answers are computed with the rule search applies, so the pages never disagree with search:
a user sees a document when one of ``principals_for(user)`` is on its access list
(``kbsearch.documents.selectors.document_visible_ids``); an empty access list is visible to nobody.

"Who can see" starts from candidates (every active account for a ``public`` document, otherwise
the accounts the directory closure, Django groups and source identities link to the access list:
``access.explanations.principal_candidates``), then verifies each one with ``principals_for``. A
candidate the tables suggest but the resolver denies (disabled in the directory, a directory past
its grace period, a Django group the directory resolver does not read) is listed as denied, with
why. Verification costs a query or two per account, so at most ``VERIFY_BUDGET`` candidates are
checked per page and the rest are counted, never guessed.
"""
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model

from access.explanations import Reason, UserAccess, principal_candidates, user_access_explain
from access.models import DirectoryUser
from access.principals import PUBLIC
from access.resolvers import principals_for
from kbsearch.documents.ids import is_storable_id
from kbsearch.documents.models import Document, DocumentAccess
from kbsearch.documents.selectors import document_visible_ids

LIST_CAP = 100
VERIFY_BUDGET = 2000
_CHUNK = 500


def document_for_admin(*, document_id: int) -> Document | None:
    """The document with that id whoever may see it (admins inspect hidden documents too), or None."""
    if not is_storable_id(document_id):
        return None
    return Document.objects.select_related("source").filter(pk=document_id).first()


def document_access_list(*, document: Document) -> list[str]:
    return sorted(DocumentAccess.objects.filter(document=document).values_list("principal", flat=True))


@dataclass
class DocumentVerdict:
    """Whether a user sees a document, and the entries of its access list that grant it, with reasons."""

    document: Document
    access_list: list[str]
    visible: bool
    granting: list[tuple[str, list[Reason]]]
    user_access: UserAccess


def document_access_explain(*, user, document: Document) -> DocumentVerdict:
    user_access = user_access_explain(user=user)
    access_list = document_access_list(document=document)
    # The verdict is search's own check; the entries explain it (they agree: same principals, same rows).
    visible = document.pk in document_visible_ids(user=user, document_ids=[document.pk])
    held = set(user_access.principals)
    granting = [(principal, user_access.reasons.get(principal, [])) for principal in access_list if principal in held]
    return DocumentVerdict(document, access_list, visible, granting if visible else [], user_access)


@dataclass
class DeniedCandidate:
    user: object
    reason: str


@dataclass
class DocumentAudience:
    """The accounts that see a document, verified one by one; lists capped at ``LIST_CAP``."""

    document: Document
    access_list: list[str]
    public: bool
    active_accounts: int
    candidates: int
    checked: int
    visible: list[tuple[object, list[str]]] = field(default_factory=list)  # (user, granting entries)
    visible_count: int = 0
    denied: list[DeniedCandidate] = field(default_factory=list)
    denied_count: int = 0
    without_account: list[DirectoryUser] = field(default_factory=list)
    without_account_count: int = 0

    @property
    def unchecked(self) -> int:
        return self.candidates - self.checked

    @property
    def visible_more(self) -> int:
        return self.visible_count - len(self.visible)

    @property
    def denied_more(self) -> int:
        return self.denied_count - len(self.denied)

    @property
    def without_account_more(self) -> int:
        return self.without_account_count - len(self.without_account)


def document_audience(*, document: Document, list_cap: int = LIST_CAP, verify_budget: int = VERIFY_BUDGET) -> DocumentAudience:
    model = get_user_model()
    manager = model._default_manager
    access_list = document_access_list(document=document)
    granted = set(access_list)
    public = PUBLIC in granted
    if public:
        # Only active accounts have principals at all, so every one of them is a candidate.
        candidate_ids = list(manager.filter(is_active=True).order_by(model.USERNAME_FIELD).values_list("pk", flat=True))
        # Every enabled directory user would see it once signed in: those without an account yet.
        without_query = DirectoryUser.objects.filter(deleted_at=None, enabled=True).exclude(
            username_key__in=[name.casefold() for name in manager.values_list(model.USERNAME_FIELD, flat=True)]
        )
        without, without_count = list(without_query.select_related("directory").order_by("username_key")[:list_cap]), without_query.count()
    else:
        found = principal_candidates(principals=access_list)
        candidate_ids = list(manager.filter(pk__in=found.user_ids).order_by(model.USERNAME_FIELD).values_list("pk", flat=True))
        without, without_count = found.directory_users_without_account[:list_cap], len(found.directory_users_without_account)
    audience = DocumentAudience(
        document=document, access_list=access_list, public=public,
        active_accounts=manager.filter(is_active=True).count(), candidates=len(candidate_ids), checked=0,
        without_account=without, without_account_count=without_count,
    )
    to_check = candidate_ids[:verify_budget]
    for start in range(0, len(to_check), _CHUNK):
        users = manager.in_bulk(to_check[start : start + _CHUNK])
        for pk in to_check[start : start + _CHUNK]:
            _verify(audience, users[pk], granted, list_cap)
    return audience


def _verify(audience: DocumentAudience, user, granted: set[str], list_cap: int) -> None:
    audience.checked += 1
    principals = principals_for(user)
    entries = sorted(principals & granted)
    if entries:
        audience.visible_count += 1
        if len(audience.visible) < list_cap:
            audience.visible.append((user, entries))
        return
    audience.denied_count += 1
    if len(audience.denied) < list_cap:
        if not user.is_active:
            reason = "inactive account"
        elif not principals:
            reason = "no principals: disabled or deleted in the directory, or the resolver failed"
        else:
            reason = "none of their principals is on the access list (e.g. a directory past its grace period)"
        audience.denied.append(DeniedCandidate(user, reason))
