"""File-share connector: a folder tree of Markdown, HTML and plain-text files.

Permissions come from ``_access.yaml`` files::

    principals: [public, group:hr, user:alice]
    inherit: false   # default: this list replaces the parent folder's; true: adds to it

A folder without one inherits its parent's list; the root without one grants nobody, so a tree
without permissions stays invisible (fail closed). A malformed ``_access.yaml`` makes every file
below it a failure with ``revoke_access`` until it is fixed.

External ids are POSIX paths relative to the root. Polling compares modification times, counting a
change to any ``_access.yaml`` on the way to the root as a change of the file.
"""
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
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
from kbsearch.ingest.inputs import DocumentInput
from kbsearch.ingest.parsers import blocks_from_html, blocks_from_markdown, blocks_from_text

ACCESS_FILE = "_access.yaml"
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
    changed_at: float  # newest modification time of the access files that shaped this list
    error: str = ""


def _read_access_file(path: Path, parent: _FolderAccess) -> _FolderAccess:
    changed_at = max(parent.changed_at, path.stat().st_mtime)
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
        return _FolderAccess(None, changed_at, f"{path}: invalid access file: {error}")
    if inherit:
        if parent.principals is None:
            return _FolderAccess(None, changed_at, parent.error)
        principals = principals | parent.principals
    return _FolderAccess(principals, changed_at)


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

    def _walk(self) -> Iterator[tuple[Path, _FolderAccess]]:
        """Yield (file, its folder's access) for every indexable file, in a stable order."""
        if not self.root.is_dir():
            raise ConnectorError(f"{self.root} is not a readable folder")
        access_by_folder: dict[Path, _FolderAccess] = {}
        nobody = _FolderAccess(frozenset(), 0.0)

        def on_error(error: OSError) -> None:
            # An unreadable subfolder must fail the run: pruning after a partial walk would delete
            # every document in it.
            raise ConnectorError(f"cannot read {error.filename}: {error.strerror}")

        for folder, subfolders, files in os.walk(self.root, onerror=on_error, followlinks=False):
            folder_path = Path(folder)
            subfolders.sort()
            subfolders[:] = [name for name in subfolders if not name.startswith(".")]
            parent = access_by_folder.get(folder_path.parent, nobody) if folder_path != self.root else nobody
            access = parent
            if ACCESS_FILE in files:
                access = _read_access_file(folder_path / ACCESS_FILE, parent)
            access_by_folder[folder_path] = access
            for name in sorted(files):
                path = folder_path / name
                if name.startswith(".") or name == ACCESS_FILE or path.suffix.lower() not in _PARSERS:
                    continue
                if path.is_symlink():
                    continue
                yield path, access

    def _external_id(self, path: Path) -> str:
        return str(PurePosixPath(path.relative_to(self.root).as_posix()))

    def _load(self, path: Path, access: _FolderAccess) -> LoadItem:
        external_id = self._external_id(path)
        if access.principals is None:
            return DocumentFailure(external_id, access.error, revoke_access=True)
        try:
            stat = path.stat()
            limit = settings.KBSEARCH_MAX_DOCUMENT_BYTES
            if stat.st_size > limit:
                return DocumentFailure(
                    external_id, f"file is {stat.st_size:,} bytes; the limit is {limit:,} (KBSEARCH_MAX_DOCUMENT_BYTES)"
                )
            text = _decode(path.read_bytes(), external_id)
        except (OSError, ValueError) as error:
            return DocumentFailure(external_id, str(error))
        blocks = _PARSERS[path.suffix.lower()](text)
        title = _title_of(blocks, path)
        return DocumentInput(
            external_id=external_id,
            title=title,
            blocks=blocks,
            principals=access.principals,
            url=path.as_uri(),
            updated_at=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
        )

    def load_all(self) -> Iterator[LoadItem]:
        for path, access in self._walk():
            yield self._load(path, access)

    def poll(self, *, start: datetime, end: datetime) -> Iterator[LoadItem]:
        # Files stamped after ``end`` are included too: file-server clocks drift, and a file seen
        # twice costs a hash comparison while a file never seen is a stale index.
        low = start.timestamp()
        for path, access in self._walk():
            try:
                changed = max(path.stat().st_mtime, access.changed_at)
            except OSError:
                continue  # vanished since the walk; pruning removes it
            if changed >= low:
                yield self._load(path, access)

    def list_ids(self) -> Iterator[str]:
        for path, _access in self._walk():
            yield self._external_id(path)


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
