"""The shared workspace: files and folders with versions, leases with fencing, uploads and a change feed."""

from toolbridge.workspace._blobs import BlobInfo, BlobStore, LocalBlobStore, MemoryBlobStore, S3BlobStore
from toolbridge.workspace._connector import WorkspaceConnector
from toolbridge.workspace._import import (
    Fetched,
    HttpImportSource,
    Importer,
    ImportPolicy,
    ImportSource,
    Resolver,
    is_blocked_address,
)
from toolbridge.workspace._model import (
    Change,
    ChangePage,
    Entry,
    Lease,
    Member,
    Role,
    Version,
    WorkspaceInfo,
)
from toolbridge.workspace._paths import normalize_path
from toolbridge.workspace._service import Workspaces
from toolbridge.workspace._signing import UrlSigner

__all__ = [
    "BlobInfo",
    "BlobStore",
    "Change",
    "ChangePage",
    "Entry",
    "Fetched",
    "HttpImportSource",
    "ImportPolicy",
    "ImportSource",
    "Importer",
    "Lease",
    "LocalBlobStore",
    "Member",
    "MemoryBlobStore",
    "Resolver",
    "Role",
    "S3BlobStore",
    "UrlSigner",
    "Version",
    "WorkspaceConnector",
    "WorkspaceInfo",
    "Workspaces",
    "is_blocked_address",
    "normalize_path",
]
