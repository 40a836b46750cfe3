"""A resolver that also gives source-scoped principals through ``SourceIdentity`` rows, the way
identity mapping will: the directory's principals plus every mapped source identity naming the
user's directory entry or one of their groups. Importable by dotted path for the settings."""
from access.models import DirectoryMembership, DirectoryUser, SourceIdentity
from access.resolvers import DirectoryPrincipalResolver


class MappedDirectoryResolver(DirectoryPrincipalResolver):
    def resolve(self, user) -> frozenset[str]:
        principals = super().resolve(user)
        if "user:" + user.get_username().casefold() not in principals:
            return principals  # unknown, disabled or stale: identity mapping adds nothing either
        rows = DirectoryUser.objects.filter(username_key=user.get_username().casefold())
        groups = DirectoryMembership.objects.filter(user__in=rows).values("group_id")
        mapped = SourceIdentity.objects.filter(status=SourceIdentity.Status.MAPPED)
        scoped = mapped.filter(directory_user__in=rows) | mapped.filter(directory_group__in=groups)
        return principals | frozenset(scoped.values_list("principal", flat=True))
