"""The shared workspace: files and folders with versions, leases with fencing, uploads and a change feed."""

from toolbridge.workspace._blobs import BlobInfo, BlobStore, LocalBlobStore, MemoryBlobStore, S3BlobStore
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

__all__ = [
    "BlobInfo",
    "BlobStore",
    "Change",
    "ChangePage",
    "Entry",
    "Lease",
    "LocalBlobStore",
    "Member",
    "MemoryBlobStore",
    "Role",
    "S3BlobStore",
    "Version",
    "WorkspaceInfo",
    "Workspaces",
    "normalize_path",
]
