"""Directory sync and principal resolution at size: a throwaway slapd loaded with a synthetic tree.

The tree (written as LDIF and loaded with slapadd, the way tests/access loads its own): --users
inetOrgPerson users and --groups groupOfNames groups. The first 500 groups are flat and one user,
``heavy``, is in all of them; the other groups nest three levels deep (each group's parent is a
group of the level above) and every other user is a direct member of 5 random groups, so their
closure is 5 to 15 groups. The sync reads through the production client (paged, 500 a page) as a
read-only service account; the database is DATABASE_URL (PostgreSQL for the figures), migrated
into a fresh schema by Django's test runner machinery.

Measured: a first full sync (empty tables), a second full sync (nothing changed), two incremental
syncs after one membership change each (the first re-reads every entry slapadd stamped in the
cursor's second, since modifyTimestamp >= cursor includes that second; the second is the steady
state), and ``principals_for`` for ``heavy`` (500 groups) and for a
typical user, each resolved --resolutions times. Before resolving, every group gets
--identities-per-group mapped source identities (``source/bench-wiki/group:...`` rows, as identity
mapping leaves them) and every user one, so the resolver's second query (mapped identities) returns
2 x 500 + 1 principals for ``heavy``. Prints Markdown.

    DATABASE_URL=postgres://... .venv/bin/python bench/bench_directory.py [--users 10000] [--groups 2000]
"""
import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kbsearch.settings")

HEAVY_GROUPS = 500


def tree_ldif(users: int, groups: int, rng: random.Random) -> str:
    people, units = "ou=people,dc=example,dc=com", "ou=groups,dc=example,dc=com"
    members: dict[int, list[str]] = {g: [] for g in range(groups)}
    nested = list(range(HEAVY_GROUPS, groups))
    third = max(1, len(nested) // 3)
    levels = [nested[:third], nested[third : 2 * third], nested[2 * third :]]
    for upper, lower in zip(levels, levels[1:]):
        for position, g in enumerate(lower):
            members[upper[position % len(upper)]].append(f"cn=g{g},{units}")
    lines = [f"dn: {people}\nobjectClass: organizationalUnit\nou: people\n", f"dn: {units}\nobjectClass: organizationalUnit\nou: groups\n"]
    for n in range(users):
        uid = "heavy" if n == 0 else f"u{n:05d}"
        lines.append(f"dn: uid={uid},{people}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: User {n}\nsn: {n}\nmail: {uid}@example.com\n")
        chosen = range(HEAVY_GROUPS) if n == 0 else rng.sample(nested or range(groups), 5)
        for g in chosen:
            members[g].append(f"uid={uid},{people}")
    for g in range(groups):
        if len(members[g]) < 2:  # groupOfNames needs a member after heavy is removed from g0
            members[g].append(f"uid=u{1 + g % (users - 1):05d},{people}")
        body = "".join(f"member: {dn}\n" for dn in members[g])
        lines.append(f"dn: cn=g{g},{units}\nobjectClass: groupOfNames\ncn: g{g}\n{body}")
    return "\n".join(lines)


def timed(function):
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def resolution_row(label: str, user, runs: int, principals_for, table: str) -> tuple:
    resolved = principals_for(user)
    groups = sum(1 for p in resolved if p.startswith("group:"))
    scoped = sum(1 for p in resolved if p.startswith("source/"))
    samples = []
    for _ in range(runs):
        _result, seconds = timed(lambda: principals_for(user))
        samples.append(seconds * 1000)
    return label, table, groups, scoped, statistics.median(samples), percentile(samples, 0.95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=2_000)
    parser.add_argument("--resolutions", type=int, default=200)
    parser.add_argument("--identities-per-group", type=int, default=2)
    args = parser.parse_args()
    if args.groups <= HEAVY_GROUPS + 3 or args.users < 10:
        parser.error(f"need more than {HEAVY_GROUPS + 3} groups and at least 10 users")

    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test.runner import DiscoverRunner
    from django.test.utils import setup_test_environment, teardown_test_environment

    from access.models import DirectoryGroup, DirectoryUser, SourceIdentity
    from access.resolvers import principals_for
    from access.services import directory_create, directory_sync
    from scripts.slapd import SERVICE_DN, SERVICE_PASSWORD, Slapd

    ldif = tree_ldif(args.users, args.groups, random.Random(7))
    folder = Path(tempfile.mkdtemp(prefix="kbsearch-bench-slapd-"))
    server, load_seconds = timed(lambda: Slapd.start(folder / "slapd", ldif))
    setup_test_environment()
    runner = DiscoverRunner(verbosity=0, interactive=False)
    databases = runner.setup_databases()
    try:
        from django.conf import settings

        settings.KBSEARCH_PRINCIPAL_RESOLVER = "access.resolvers.DirectoryPrincipalResolver"
        os.environ["KBSEARCH_BENCH_DIRECTORY_PASSWORD"] = SERVICE_PASSWORD
        directory = directory_create(
            key="bench", kind="openldap", server_urls=server.url, bind_dn=SERVICE_DN,
            bind_password_env="KBSEARCH_BENCH_DIRECTORY_PASSWORD",
            user_base_dn="ou=people,dc=example,dc=com", group_base_dn="ou=groups,dc=example,dc=com",
        )
        first, first_seconds = timed(lambda: directory_sync(directory=directory, full=True))
        assert first.status == "succeeded", first.errors
        second, second_seconds = timed(lambda: directory_sync(directory=directory, full=True))
        server.ldapmodify(
            "dn: cn=g0,ou=groups,dc=example,dc=com\nchangetype: modify\ndelete: member\n"
            "member: uid=heavy,ou=people,dc=example,dc=com\n"
        )
        third, incremental_seconds = timed(lambda: directory_sync(directory=directory))
        assert third.mode == "incremental" and third.counts["memberships_removed"] == 1, third.counts
        time.sleep(1.1)  # the next change in a later second than the cursor (modifyTimestamp has 1 s steps)
        server.ldapmodify(
            "dn: cn=g0,ou=groups,dc=example,dc=com\nchangetype: modify\nadd: member\n"
            "member: uid=heavy,ou=people,dc=example,dc=com\n"
        )
        fourth, steady_seconds = timed(lambda: directory_sync(directory=directory))
        assert fourth.mode == "incremental" and fourth.counts["memberships_added"] == 1, fourth.counts
        heavy, typical = User.objects.create_user("heavy"), User.objects.create_user("u00001")
        people = (("user in 500 groups", heavy), ("typical user", typical))
        # The same users resolved without and then with mapped identities, under the same load.
        rows = [resolution_row(label, user, args.resolutions, principals_for, "without") for label, user in people]
        mapped = SourceIdentity.Status.MAPPED
        identities = [
            SourceIdentity(source_key="bench-wiki", kind="group", name=f"{name}-{n}", status=mapped, directory_group_id=pk,
                           principal=f"source/bench-wiki/group:{name}-{n}")
            for pk, name in DirectoryGroup.objects.values_list("pk", "name") for n in range(args.identities_per_group)
        ] + [
            SourceIdentity(source_key="bench-wiki", kind="user", name=name, status=mapped, directory_user_id=pk,
                           principal=f"source/bench-wiki/user:{name}")
            for pk, name in DirectoryUser.objects.values_list("pk", "username_key")
        ]
        SourceIdentity.objects.bulk_create(identities, batch_size=2000)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE access_sourceidentity")  # as autovacuum would after a bulk load
        rows += [resolution_row(label, user, args.resolutions, principals_for, "with") for label, user in people]
    finally:
        runner.teardown_databases(databases)
        teardown_test_environment()
        server.stop()

    counts = first.counts
    print(f"Directory: {args.users:,} users, {args.groups:,} groups, {counts['memberships']:,} memberships "
          f"(transitive), {counts['pages']} pages of 500; slapd loaded by slapadd in {load_seconds:.1f} s\n")
    print("| sync | seconds | changes |")
    print("|---|---:|---|")
    print(f"| first full (empty tables) | {first_seconds:.1f} | {counts['memberships_added']:,} memberships added |")
    print(f"| second full (nothing changed) | {second_seconds:.1f} | {second.counts['memberships_added']} added, {second.counts['memberships_removed']} removed |")
    print(f"| incremental, first after the bulk load (one membership removed) | {incremental_seconds:.2f} | "
          f"{third.counts['memberships_removed']} removed; {third.counts['users_read'] + third.counts['groups_read']:,} entries re-read |")
    print(f"| incremental, steady state (one membership added) | {steady_seconds:.2f} | "
          f"{fourth.counts['memberships_added']} added; {fourth.counts['users_read'] + fourth.counts['groups_read']:,} entries read |")
    print(f"\n{len(identities):,} mapped source identities ({args.identities_per_group} per group, 1 per user)\n")
    print(f"| principal resolution ({args.resolutions} runs, two queries) | mapped identities in the table | groups | "
          "mapped identities resolved | p50 ms | p95 ms |")
    print("|---|---|---:|---:|---:|---:|")
    for label, table, groups, scoped, p50, p95 in rows:
        print(f"| {label} | {table} | {groups} | {scoped} | {p50:.2f} | {p95:.2f} |")
    print(f"\nDatabase: {settings.DATABASES['default']['ENGINE']}")


if __name__ == "__main__":
    main()
