"""The company directory as last synced: configuration, users, groups, memberships, runs, audit.

A ``Directory`` is one LDAP or Active Directory server (or a set of replicas) read by
``access.directory.sync``. Users and groups are keyed by the directory's stable id (entryUUID on
OpenLDAP, objectGUID on AD) so a rename or a move keeps their row; DNs, usernames, emails and UPNs
are kept beside it for sign-in and identity mapping to match on.

Memberships are stored twice: the direct edges as the directory states them (group -> user,
group -> group) and their transitive closure (user -> every group they are in through any chain),
recomputed by each sync. The principal resolver reads only the closure, in one query.

``IdentityMapping`` and ``SourceIdentity`` link the identities a source states (Confluence account
ids, SharePoint object ids, emails; principals ``source/<key>/user:<id>``) to directory users and
groups (``access.mapping``). They name sources by key because this app sits below the documents app.
"""
from datetime import timedelta

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Directory(models.Model):
    class Kind(models.TextChoices):
        OPENLDAP = "openldap", "OpenLDAP"
        AD = "ad", "Active Directory"

    key = models.SlugField(unique=True)
    name = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    enabled = models.BooleanField(default=True)
    # One or more ldap:// or ldaps:// URLs separated by spaces, tried in order (replicas).
    server_urls = models.CharField(max_length=1000)
    bind_dn = models.CharField(max_length=500, blank=True)
    # The NAME of the environment variable holding the bind password; the password is never stored.
    bind_password_env = models.CharField(max_length=200, blank=True)
    start_tls = models.BooleanField(default=False)
    # A PEM file of the CA certificates to trust for ldaps:// and StartTLS; empty = the system's.
    ca_file = models.CharField(max_length=500, blank=True)
    user_base_dn = models.CharField(max_length=500)
    user_filter = models.CharField(max_length=1000, blank=True, help_text="empty: the kind's default")
    group_base_dn = models.CharField(max_length=500)
    group_filter = models.CharField(max_length=1000, blank=True, help_text="empty: the kind's default")
    page_size = models.PositiveIntegerField(default=500, validators=[MinValueValidator(1)])
    timeout_seconds = models.PositiveIntegerField(default=30, validators=[MinValueValidator(1)])
    # How long users keep their last synced groups when syncs stop succeeding; then only public.
    grace_period = models.DurationField(default=timedelta(hours=24))
    # A sync removing more than this share of all users or memberships waits for an admin.
    max_removal_share = models.FloatField(
        default=0.3, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    full_sync_interval = models.DurationField(default=timedelta(hours=24))
    # Incremental position: the newest modifyTimestamp (OpenLDAP) or uSNChanged (AD) applied, and
    # for AD the server it came from (USNs are per domain controller).
    cursor = models.CharField(max_length=64, blank=True)
    cursor_server = models.CharField(max_length=500, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_full_success_at = models.DateTimeField(null=True, blank=True)
    # When the read behind the last applied sync started: an older read is never applied after it.
    last_read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "directories"

    def __str__(self) -> str:
        return self.key


class DirectoryUser(models.Model):
    directory = models.ForeignKey(Directory, on_delete=models.CASCADE, related_name="users")
    external_id = models.CharField(max_length=64)  # entryUUID / objectGUID, canonical text
    dn = models.CharField(max_length=1000)
    dn_key = models.CharField(max_length=1000, db_index=True)  # normalized for comparison
    username = models.CharField(max_length=256)  # uid / sAMAccountName
    username_key = models.CharField(max_length=256, db_index=True)  # casefolded
    email = models.CharField(max_length=320, blank=True)
    upn = models.CharField(max_length=320, blank=True)
    display_name = models.CharField(max_length=500, blank=True)
    sid = models.CharField(max_length=200, blank=True)  # objectSid, S-1-5-...
    enabled = models.BooleanField(default=True)
    # Set when the user left the directory (or its filter): the row stays so that a Django account
    # of that name sees nothing rather than falling back to ``public``.
    deleted_at = models.DateTimeField(null=True, blank=True)
    changed = models.CharField(max_length=64, blank=True)  # modifyTimestamp / uSNChanged as read

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["directory", "external_id"], name="directory_user_external_id"),
        ]

    def __str__(self) -> str:
        return f"{self.directory.key}:{self.username}"


class DirectoryGroup(models.Model):
    directory = models.ForeignKey(Directory, on_delete=models.CASCADE, related_name="groups")
    external_id = models.CharField(max_length=64)
    dn = models.CharField(max_length=1000)
    dn_key = models.CharField(max_length=1000, db_index=True)
    name = models.CharField(max_length=256)  # cn: what ``group:<name>`` principals carry
    account_name = models.CharField(max_length=256, blank=True)  # AD sAMAccountName
    sid = models.CharField(max_length=200, blank=True)
    changed = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["directory", "external_id"], name="directory_group_external_id"),
        ]

    def __str__(self) -> str:
        return f"{self.directory.key}:{self.name}"


class DirectoryUserEdge(models.Model):
    """``group`` lists ``user`` as a direct member."""

    group = models.ForeignKey(DirectoryGroup, on_delete=models.CASCADE, related_name="user_edges")
    user = models.ForeignKey(DirectoryUser, on_delete=models.CASCADE, related_name="group_edges")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["group", "user"], name="directory_user_edge")]

    def __str__(self) -> str:
        return f"{self.group_id} lists user {self.user_id}"


class DirectoryGroupEdge(models.Model):
    """``parent`` lists the group ``child`` as a direct member."""

    parent = models.ForeignKey(DirectoryGroup, on_delete=models.CASCADE, related_name="child_edges")
    child = models.ForeignKey(DirectoryGroup, on_delete=models.CASCADE, related_name="parent_edges")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["parent", "child"], name="directory_group_edge")]

    def __str__(self) -> str:
        return f"{self.parent_id} lists group {self.child_id}"


class DirectoryMembership(models.Model):
    """``user`` is in ``group`` directly or through nested groups: the closure the resolver reads."""

    user = models.ForeignKey(DirectoryUser, on_delete=models.CASCADE, related_name="memberships")
    group = models.ForeignKey(DirectoryGroup, on_delete=models.CASCADE, related_name="memberships")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "group"], name="directory_membership")]

    def __str__(self) -> str:
        return f"user {self.user_id} in group {self.group_id}"


class DirectorySyncRun(models.Model):
    class Mode(models.TextChoices):
        FULL = "full"
        INCREMENTAL = "incremental"

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"  # the directory could not be read or the result not applied; nothing changed
        HELD = "held"  # implausible removals: nothing applied until an admin confirms
        CONFIRMED = "confirmed"  # a held run an admin confirmed; ``confirmed_by_run`` applied it
        SKIPPED = "skipped"  # a newer read was applied while this one ran

    directory = models.ForeignKey(Directory, on_delete=models.CASCADE, related_name="sync_runs")
    mode = models.CharField(max_length=16, choices=Mode.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    # Memberships (closure) added and removed, users removed or disabled: capped lists.
    changes = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(default=list, blank=True)
    confirms = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="confirmed_by_run"
    )

    class Meta:
        ordering = ["-started_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.directory.key} {self.mode} {self.status}"


class AuditEvent(models.Model):
    """A permission-relevant event: a sync's changes, a held or confirmed sync, a sign-in or a refused one."""

    class Kind(models.TextChoices):
        SYNC_APPLIED = "sync_applied"
        SYNC_HELD = "sync_held"
        SYNC_CONFIRMED = "sync_confirmed"
        SIGN_IN = "sign_in"
        SIGN_IN_FAILED = "sign_in_failed"
        ADMIN_CHANGE = "admin_change"  # an admin changed a directory, a mapping or confirmed a sync
        MAPPING_CHANGED = "mapping_changed"  # source identities mapped, unmapped or remapped

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    directory = models.ForeignKey(Directory, null=True, blank=True, on_delete=models.SET_NULL)
    actor = models.CharField(max_length=256, blank=True)  # who did it: "sync", an admin's username
    summary = models.CharField(max_length=500)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.kind}: {self.summary}"


class IdentityMapping(models.Model):
    """How the identities one source states map onto directory users and groups.

    A source with no mapping names the company namespace directly (``user:<uid>``, ``group:<cn>``);
    with one, its principals are scoped to it and reach users only through ``SourceIdentity`` rows.
    """

    class UserKey(models.TextChoices):
        USERNAME = "username", "username (uid / sAMAccountName)"
        EMAIL = "email", "email (mail)"
        UPN = "upn", "userPrincipalName"
        DN = "dn", "distinguished name"
        SID = "sid", "objectSid"
        EXTERNAL_ID = "external_id", "entryUUID / objectGUID"

    class GroupKey(models.TextChoices):
        CN = "cn", "cn"
        DN = "dn", "distinguished name"
        ACCOUNT_NAME = "account_name", "sAMAccountName"
        SID = "sid", "objectSid"
        EXTERNAL_ID = "external_id", "entryUUID / objectGUID"

    source_key = models.SlugField(max_length=64, unique=True)  # documents.Source.key
    # Match only this directory's users and groups; empty: every enabled directory (a key found in
    # two of them is ambiguous and maps to nobody).
    directory = models.ForeignKey(Directory, null=True, blank=True, on_delete=models.PROTECT)
    user_key = models.CharField(max_length=16, choices=UserKey.choices, default=UserKey.EMAIL)
    group_key = models.CharField(max_length=16, choices=GroupKey.choices, default=GroupKey.CN)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.source_key}: users by {self.user_key}, groups by {self.group_key}"


class SourceIdentity(models.Model):
    """An identity a source's access lists name, and the directory user or group it maps to, if any."""

    class Kind(models.TextChoices):
        USER = "user"
        GROUP = "group"

    class Status(models.TextChoices):
        UNMAPPED = "unmapped"  # no directory entry has that key: visible to nobody
        MAPPED = "mapped"
        AMBIGUOUS = "ambiguous"  # several entries have that key: visible to nobody, shown to admins

    source_key = models.SlugField(max_length=64)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    name = models.CharField(max_length=500)  # as the source states it, casefolded
    principal = models.CharField(max_length=600, unique=True)  # source/<key>/<kind>:<name>
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UNMAPPED)
    directory_user = models.ForeignKey(
        DirectoryUser, null=True, blank=True, on_delete=models.SET_NULL, related_name="source_identities"
    )
    directory_group = models.ForeignKey(
        DirectoryGroup, null=True, blank=True, on_delete=models.SET_NULL, related_name="source_identities"
    )
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now_add=True)
    mapped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "source identities"
        indexes = [models.Index(fields=["source_key", "status"])]

    def __str__(self) -> str:
        return self.principal
