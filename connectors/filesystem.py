"""File-share connector: a folder tree of Markdown, HTML and plain-text files.

Permissions come from ``_access.yaml`` files::

    principals: [public, group:hr, user:alice]
    inherit: false   # default: this list replaces the parent folder's; true: adds to it

A folder without one inherits its parent's list; the root without one grants nobody, so a tree
without permissions stays invisible (fail closed). A malformed ``_access.yaml`` makes every file
below it a failure with ``revoke_access`` until it is fixed.

External ids are POSIX paths relative to the root. A file's place (the ``place`` facet) is the
top-level folder it is in (``hr`` for ``hr/policies/leave.md``); files at the root are in none. A
file moved to another top folder has another path, so it is a new document and the old one goes.

Polling re-reads a file when one of these says it may have changed (a re-read of an unchanged file
costs a read and a hash comparison; a missed change is a stale or wrongly visible document):
- its modification or inode change time falls in the poll window. The change time matters: ``mv``,
  ``cp -p``, rsync and Windows copies keep the modification time, but renaming or creating a file
  sets its change time, which no user can set back;
- its folder, or a folder above it, was not in the last walk's listing or has another inode now: a
  folder moved or renamed into place brings files whose own times are all old;
- an ``_access.yaml`` in its folder or above was created, edited or deleted since the last walk
  (signature: inode, size, modification and change time) or was touched in the poll window.

What the last walk saw is kept in ``self.state`` (saved by the sync service after a completed run):
one inode per folder and one signature per access file, never one entry per file. A missing or
foreign state (first poll after an upgrade, another root) counts every folder as new, so that poll
re-reads the whole tree once rather than trusting what it cannot know.
"""
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

import yaml
from django.conf import settings

from access.principals import InvalidPrincipal, normalize_principal
from connectors.base import (
    BaseConnector,
    ConnectorConfigError,
    ConnectorError,
    DocumentFailure,
    FullLoadMixin,
    IdListingMixin,
    LoadItem,
    PollMixin,
    register_connector,
)
from kbsearch.ingest.inputs import DocumentInput, Place
from kbsearch.ingest.parsers import blocks_from_html, blocks_from_markdown, blocks_from_text

ACCESS_FILE = "_access.yaml"
# Bump when the meaning of ``state`` changes: a state of another version is ignored (all unknown).
_STATE_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PARSERS = {
    ".md": blocks_from_markdown,
    ".markdown": blocks_from_markdown,
    ".html": blocks_from_html,
    ".htm": blocks_from_html,
    ".txt": blocks_from_text,
}


@dataclass(frozen=True)
class _FolderAccess:
    principals: frozenset[str] | None  # None: the folder's access file is broken
    error: str = ""


@dataclass(frozen=True)
class _Entry:
    """An indexable file found by a walk."""

    path: Path
    access: _FolderAccess
    stat: os.stat_result | None  # None: could not be read; the load reports why
    # A folder on the way to the root is new, moved, or had its access file changed since the last walk.
    below_change: bool


@dataclass
class _Listing:
    """What one walk saw, and what the next poll compares with (``state`` as JSON-ready dicts)."""

    folders: dict[str, int]  # folder (relative POSIX path, "." for the root) -> inode
    access_files: dict[str, list[int]]  # folder -> signature of its access file

    def as_state(self, root: Path) -> dict:
        return {"version": _STATE_VERSION, "root": str(root), "folders": self.folders, "access_files": self.access_files}

    @classmethod
    def from_state(cls, state: dict, root: Path) -> "_Listing | None":
        """The last walk's listing, or None when there is none this connector can trust."""
        if state.get("version") != _STATE_VERSION or state.get("root") != str(root):
            return None
        folders, access_files = state.get("folders"), state.get("access_files")
        if not isinstance(folders, dict) or not isinstance(access_files, dict):
            return None
        return cls(folders, access_files)


def _signature(result: os.stat_result) -> list[int]:
    # The change time alone would do on Linux; inode, size and modification time also catch edits on
    # file systems whose change time is coarse or not kept (some network mounts).
    return [result.st_ino, result.st_size, result.st_mtime_ns, result.st_ctime_ns]


def _folder_changed(
    key: str, access_stat: os.stat_result | None, *, last: _Listing | None, seen: _Listing, since_ns: int | None
) -> bool:
    """Whether the folder ``key`` is new or replaced, or its access file appeared, changed or went."""
    if last is None:
        return True  # nothing known: fail safe, as if everything were new
    if last.folders.get(key) != seen.folders[key] or last.access_files.get(key) != seen.access_files.get(key):
        return True
    # Also trust the window, as for files: it covers an edit too quick for a coarse clock to show.
    return (
        since_ns is not None
        and access_stat is not None
        and max(access_stat.st_mtime_ns, access_stat.st_ctime_ns) >= since_ns
    )


def _read_access_file(path: Path, parent: _FolderAccess) -> _FolderAccess:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError("expected a mapping with 'principals' and optional 'inherit'")
        unknown = set(data) - {"principals", "inherit"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}")
        raw = data.get("principals", [])
        if not isinstance(raw, list):
            raise ValueError("'principals' must be a list")
        inherit = data.get("inherit", False)
        if not isinstance(inherit, bool):
            raise ValueError("'inherit' must be true or false")
        principals = frozenset(normalize_principal(p) for p in raw)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError, InvalidPrincipal) as error:
        return _FolderAccess(None, f"{path}: invalid access file: {error}")
    if inherit:
        if parent.principals is None:
            return _FolderAccess(None, parent.error)
        principals = principals | parent.principals
    return _FolderAccess(principals)


def _decode(raw: bytes, name: str) -> str:
    if b"\x00" in raw[:8192] and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ValueError(f"{name} looks binary (NUL bytes); only text, Markdown and HTML files are indexed")
    for bom, encoding in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if raw.startswith(bom):
            return raw.decode(encoding)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{name} is not valid UTF-8 (byte 0x{raw[error.start]:02x} at offset {error.start}); "
            "save it as UTF-8"
        ) from None


@register_connector("filesystem")
class FileSystemConnector(BaseConnector, FullLoadMixin, PollMixin, IdListingMixin):
    """Documents from a directory tree, permissions from ``_access.yaml`` files."""

    def validate_config(self) -> None:
        root = self.config.get("root")
        if not root:
            raise ConnectorConfigError("filesystem connector needs 'root', the folder to index")
        self.root = Path(root).resolve()

    def _walk(self, *, since_ns: int | None = None, listing: _Listing | None = None) -> Iterator[_Entry]:
        """Yield every indexable file, in a stable order; then fill ``listing`` with what was seen.

        ``since_ns`` is the start of a poll window: an access file touched since then counts as
        changed whatever the last listing (from ``self.state``) says. Without a usable last listing
        every folder counts as new.
        """
        if not self.root.is_dir():
            raise ConnectorError(f"{self.root} is not a readable folder")
        last = _Listing.from_state(self.state, self.root)
        seen = _Listing({}, {})
        access_by_folder: dict[Path, _FolderAccess] = {}
        changed_below: dict[Path, bool] = {}
        nobody = _FolderAccess(frozenset())

        def on_error(error: OSError) -> None:
            # An unreadable subfolder must fail the run: pruning after a partial walk would delete
            # every document in it.
            raise ConnectorError(f"cannot read {error.filename}: {error.strerror}")

        for folder, subfolders, files in os.walk(self.root, onerror=on_error, followlinks=False):
            folder_path = Path(folder)
            subfolders.sort()
            subfolders[:] = [name for name in subfolders if not name.startswith(".")]
            key = folder_path.relative_to(self.root).as_posix()
            at_root = folder_path == self.root
            parent = nobody if at_root else access_by_folder.get(folder_path.parent, nobody)
            try:
                seen.folders[key] = os.stat(folder_path).st_ino
                access_stat = os.stat(folder_path / ACCESS_FILE) if ACCESS_FILE in files else None
            except OSError as error:
                raise ConnectorError(f"cannot read {error.filename}: {error.strerror}") from None
            access = parent
            if access_stat is not None:
                seen.access_files[key] = _signature(access_stat)
                access = _read_access_file(folder_path / ACCESS_FILE, parent)
            access_by_folder[folder_path] = access
            changed = (not at_root and changed_below[folder_path.parent]) or _folder_changed(
                key, access_stat, last=last, seen=seen, since_ns=since_ns
            )
            changed_below[folder_path] = changed
            for name in sorted(files):
                path = folder_path / name
                if name.startswith(".") or name == ACCESS_FILE or path.suffix.lower() not in _PARSERS:
                    continue
                try:
                    result = os.lstat(path)
                except FileNotFoundError:
                    continue  # vanished since the folder was listed: gone, like any deleted file
                except OSError:
                    result = None
                # Links are skipped (they may point outside the share), and so are pipes and devices,
                # which a read would block on.
                if result is not None and not stat.S_ISREG(result.st_mode):
                    continue
                yield _Entry(path, access, result, changed)
        if listing is not None:
            listing.folders, listing.access_files = seen.folders, seen.access_files

    def _external_id(self, path: Path) -> str:
        return str(PurePosixPath(path.relative_to(self.root).as_posix()))

    def _load(self, path: Path, access: _FolderAccess) -> LoadItem:
        external_id = self._external_id(path)
        # Failures that reading the same file again would repeat (a broken access file, a file too
        # large or not text) are not retryable: fixing them changes a time or signature the next poll
        # sees. An OSError may be passing (a share that hiccuped), so it is retried.
        if access.principals is None:
            return DocumentFailure(external_id, access.error, revoke_access=True, retryable=False)
        try:
            info = path.stat()
            limit = settings.KBSEARCH_MAX_DOCUMENT_BYTES
            if info.st_size > limit:
                return DocumentFailure(
                    external_id,
                    f"file is {info.st_size:,} bytes; the limit is {limit:,} (KBSEARCH_MAX_DOCUMENT_BYTES)",
                    retryable=False,
                )
            text = _decode(path.read_bytes(), external_id)
        except ValueError as error:
            return DocumentFailure(external_id, str(error), retryable=False)
        except OSError as error:
            return DocumentFailure(external_id, str(error))
        blocks = _PARSERS[path.suffix.lower()](text)
        title = _title_of(blocks, path)
        return DocumentInput(
            external_id=external_id,
            title=title,
            blocks=blocks,
            principals=access.principals,
            url=path.as_uri(),
            updated_at=datetime.fromtimestamp(info.st_mtime, tz=UTC),
            place=_top_folder(external_id),
        )

    def load_all(self) -> Iterator[LoadItem]:
        listing = _Listing({}, {})
        for entry in self._walk(listing=listing):
            yield self._load(entry.path, entry.access)
        self.state = listing.as_state(self.root)

    def poll(self, *, start: datetime, end: datetime) -> Iterator[LoadItem]:
        # Files stamped after ``end`` are included too: file-server clocks drift, and a file seen
        # twice costs a hash comparison while a file never seen is a stale index.
        since_ns = (start - _EPOCH) // timedelta(microseconds=1) * 1_000
        listing = _Listing({}, {})
        for entry in self._walk(since_ns=since_ns, listing=listing):
            if (
                entry.below_change
                or entry.stat is None
                or max(entry.stat.st_mtime_ns, entry.stat.st_ctime_ns) >= since_ns
            ):
                yield self._load(entry.path, entry.access)
        # Only a walk that ran to its end describes the tree; the service saves it after the run.
        self.state = listing.as_state(self.root)

    def list_ids(self) -> Iterator[str]:
        # Leaves ``state`` alone: it must describe the walk whose changes were yielded, not a later one
        # that could hide a change made in between.
        for entry in self._walk():
            yield self._external_id(entry.path)


def _top_folder(external_id: str) -> Place | None:
    top, separator, _rest = external_id.partition("/")
    return Place(key=top, label=top) if separator else None


def _title_of(blocks, path: Path) -> str:
    """The first heading; for plain text a short first line; else words from the file name."""
    for block in blocks:
        if block.kind == "heading" and block.text.strip():
            return block.text.strip()
    if blocks and path.suffix.lower() == ".txt":
        first_line = blocks[0].text.strip().splitlines()[0].strip() if blocks[0].text.strip() else ""
        if 0 < len(first_line) <= 120:
            return first_line
    return path.stem.split(".")[0].replace("-", " ").replace("_", " ").strip() or path.name
