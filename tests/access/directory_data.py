"""The test directory: an OpenLDAP-shaped tree and an Active-Directory-shaped tree in one slapd.

OpenLDAP (``ou=people`` / ``ou=groups``): inetOrgPerson users, groupOfNames and groupOfUniqueNames
groups nested three levels (platform in engineering in staff), a cycle (cycle-a contains cycle-b
contains cycle-a), a member DN that names no entry, and non-ASCII names (田中, 김민준, 営業部).

Active Directory (``ou=corp``): ``user``/``group`` entries with objectGUID and objectSid as binary,
userAccountControl (mlee is disabled: 514 = NORMAL_ACCOUNT | ACCOUNTDISABLE), uSNChanged, nested
groups through group DNs in ``member`` and one group larger than the page size.

Sign-in passwords (``PASSWORDS``, ``AD_PASSWORDS``) are userPassword values, which slapd lets
only a bind compare; the sync neither reads them nor can.

The binary ids are encoded here independently of the code under test, so the tests check the
decoding against a second implementation.
"""
import base64
import struct
import uuid

from scripts.slapd import SUFFIX

PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
CORP = f"ou=corp,{SUFFIX}"
AD_DOMAIN_SID = (21, 1004336348, 1177238915, 682003330)
# Members of the large AD group: more than a page (page size 2 in the tests) many times over.
BIG_GROUP_SIZE = 24


def ad_guid(name: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.corp.example.com")


def ad_sid_bytes(rid: int) -> bytes:
    """objectSid as AD stores it: revision, count, 48-bit big-endian authority, little-endian sub-authorities."""
    subs = (*AD_DOMAIN_SID, rid)
    return struct.pack("<BB", 1, len(subs)) + (5).to_bytes(6, "big") + struct.pack(f"<{len(subs)}I", *subs)


def ad_sid_text(rid: int) -> str:
    return "S-1-5-" + "-".join(str(part) for part in (*AD_DOMAIN_SID, rid))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _person(uid: str, cn: str, sn: str, display: str, mail: str) -> str:
    given = f"givenName: {GIVEN_NAMES[uid]}\n" if uid in GIVEN_NAMES else ""
    return (
        f"dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {cn}\nsn: {sn}\n"
        f"displayName: {display}\nmail: {mail}\n{given}userPassword: {PASSWORDS[uid]}\n"
    )


def _group(cn: str, members: list[str], *, unique: bool = False) -> str:
    if unique:
        lines = "".join(f"uniqueMember: {member}\n" for member in members)
        return f"dn: cn={cn},{GROUPS}\nobjectClass: groupOfUniqueNames\ncn: {cn}\n{lines}"
    lines = "".join(f"member: {member}\n" for member in members)
    return f"dn: cn={cn},{GROUPS}\nobjectClass: groupOfNames\ncn: {cn}\n{lines}"


def person_dn(uid: str) -> str:
    return f"uid={uid},{PEOPLE}"


def group_dn(cn: str) -> str:
    return f"cn={cn},{GROUPS}"


OPENLDAP_USERS = {
    # uid: (cn, sn, displayName, mail)
    "alice": ("Alice Archer", "Archer", "Alice Archer", "alice@example.com"),
    "bob": ("Bob Baker", "Baker", "Bob Baker", "bob@example.com"),
    "carol": ("Carol Cooper", "Cooper", "Carol Cooper", "carol@example.com"),
    "dave": ("Dave Dyer", "Dyer", "Dave Dyer", "dave@example.com"),
    "erin": ("Erin Evans", "Evans", "Erin Evans", "erin@example.com"),
    "frank": ("Frank Fisher", "Fisher", "Frank Fisher", "frank@example.com"),
    "grace": ("Grace Gray", "Gray", "Grace Gray", "grace@example.com"),
    "tanaka": ("田中 太郎", "田中", "田中太郎", "tanaka@example.co.jp"),
    "minjun": ("김민준", "김", "김민준 (Kim Minjun)", "minjun@example.kr"),
}

# Sign-in passwords (userPassword, stored in clear: slapd compares them on bind). Not read by syncs.
PASSWORDS = {uid: f"{uid}-pass-1" for uid in OPENLDAP_USERS} | {"tanaka": "たなか-パス-1"}
GIVEN_NAMES = {"alice": "Alice", "bob": "Bob", "tanaka": "太郎", "minjun": "민준"}

OPENLDAP_LDIF = "\n".join(
    [
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n",
        *(_person(uid, *details) for uid, details in OPENLDAP_USERS.items()),
        _group("staff", [group_dn("engineering"), group_dn("sales")]),
        _group("engineering", [group_dn("platform"), person_dn("bob")]),
        _group("platform", [person_dn("alice"), person_dn("tanaka")]),
        _group("sales", [person_dn("carol"), person_dn("minjun")], unique=True),
        _group("営業部", [person_dn("tanaka")]),
        _group("cycle-a", [group_dn("cycle-b"), person_dn("dave")]),
        _group("cycle-b", [group_dn("cycle-a"), person_dn("erin")]),
        # ghost names no entry (groupOfNames does not check): it must be ignored, not fail the sync.
        _group("hr", [person_dn("frank"), person_dn("ghost")]),
    ]
)

# Who is (transitively) in which group after a sync of OPENLDAP_LDIF; grace is in none.
OPENLDAP_CLOSURE = {
    "alice": {"platform", "engineering", "staff"},
    "tanaka": {"platform", "engineering", "staff", "営業部"},
    "bob": {"engineering", "staff"},
    "carol": {"sales", "staff"},
    "minjun": {"sales", "staff"},
    "dave": {"cycle-a", "cycle-b"},
    "erin": {"cycle-a", "cycle-b"},
    "frank": {"hr"},
    "grace": set(),
}


def ad_user_dn(cn: str) -> str:
    return f"cn={cn},ou=users,{CORP}"


def ad_group_dn(cn: str) -> str:
    return f"cn={cn},ou=groups,{CORP}"


# sAMAccountName: (cn, displayName, userAccountControl, rid, uSNChanged)
AD_USERS = {
    "jsmith": ("John Smith", "John Smith", 512, 1101, 5001),
    "mlee": ("Mary Lee", "Mary Lee", 514, 1102, 5002),
    "hanako": ("田中 花子", "田中花子", 66048, 1103, 5003),  # 66048 = NORMAL_ACCOUNT | DONT_EXPIRE_PASSWORD
    **{f"bulk{n:02d}": (f"Bulk User {n:02d}", f"Bulk User {n:02d}", 512, 1200 + n, 5100 + n) for n in range(BIG_GROUP_SIZE)},
}


# Sign-in passwords of three AD-shaped users (mlee is disabled by userAccountControl but binds on slapd).
AD_PASSWORDS = {"jsmith": "jsmith-pass-1", "mlee": "mlee-pass-1", "hanako": "はなこ-pass-1"}


def ad_user_entry(sam: str, cn: str, display: str, uac: int, rid: int, usn: int) -> str:
    password = f"userPassword: {AD_PASSWORDS[sam]}\n" if sam in AD_PASSWORDS else ""
    return (
        f"dn: {ad_user_dn(cn)}\nobjectClass: user\ncn: {cn}\nsAMAccountName: {sam}\n"
        f"userPrincipalName: {sam}@corp.example.com\nmail: {sam}@example.com\ndisplayName: {display}\n"
        f"userAccountControl: {uac}\nobjectGUID:: {_b64(ad_guid(sam).bytes_le)}\n"
        f"objectSid:: {_b64(ad_sid_bytes(rid))}\nuSNChanged: {usn}\n{password}"
    )


def ad_group_entry(cn: str, members: list[str], rid: int, usn: int) -> str:
    lines = "".join(f"member: {member}\n" for member in members)
    return (
        f"dn: {ad_group_dn(cn)}\nobjectClass: group\ncn: {cn}\nsAMAccountName: {cn}\n"
        f"objectGUID:: {_b64(ad_guid(cn).bytes_le)}\nobjectSid:: {_b64(ad_sid_bytes(rid))}\n"
        f"uSNChanged: {usn}\n{lines}"
    )


# The OUs the AD-shaped users and groups live in; a test loading its own AD-shaped tree starts with them.
AD_CONTAINERS = [
    f"dn: {CORP}\nobjectClass: organizationalUnit\nou: corp\n",
    f"dn: ou=users,{CORP}\nobjectClass: organizationalUnit\nou: users\n",
    f"dn: ou=groups,{CORP}\nobjectClass: organizationalUnit\nou: groups\n",
]
AD_LDIF = "\n".join(
    [
        *AD_CONTAINERS,
        *(ad_user_entry(sam, *details) for sam, details in AD_USERS.items()),
        ad_group_entry("Readers", [ad_user_dn("John Smith"), ad_user_dn("Mary Lee")], 2001, 6001),
        ad_group_entry("All Staff", [ad_group_dn("Readers"), ad_user_dn("田中 花子")], 2002, 6002),
        ad_group_entry("Bulk", [ad_user_dn(f"Bulk User {n:02d}") for n in range(BIG_GROUP_SIZE)], 2003, 6003),
    ]
)
AD_MAX_USN = 6003

TEST_LDIF = OPENLDAP_LDIF + "\n" + AD_LDIF
