"""Blob stores: content-addressed bytes (by SHA-256) behind a small protocol.

* :class:`LocalBlobStore` — a folder (the default): writes go to a temporary file in the same folder, are
  flushed to disk and renamed into place, so a reader never sees half a blob.
* :class:`S3BlobStore` — any S3-compatible store (needs the ``s3`` extra: ``pip install toolbridge[s3]``).
* :class:`MemoryBlobStore` — a dict, for library use and tests of the metadata layer.

Blobs are immutable and named by their digest, so writing the same bytes twice stores them once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import anyio.to_thread

from toolbridge.errors import ConfigurationError, NotFound, StorageError

__all__ = ["BlobInfo", "BlobStore", "LocalBlobStore", "MemoryBlobStore", "S3BlobStore", "hash_file"]

CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class BlobInfo:
    sha256: str
    size: int


@runtime_checkable
class BlobStore(Protocol):
    """Where file contents live. Every method is safe to call from many tasks at once."""

    @property
    def scratch(self) -> Path:
        """A folder for temporary files (uploads in progress), on the same disk as the blobs if local."""
        ...

    async def put_bytes(self, data: bytes) -> BlobInfo: ...

    async def put_file(self, path: Path, info: BlobInfo) -> None:
        """Take ownership of the finished file at ``path`` whose digest is ``info`` (moved, not copied)."""
        ...

    async def read(self, sha256: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``[start, end)`` of a blob (the whole blob by default)."""
        ...

    def stream(self, sha256: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]: ...

    async def exists(self, sha256: str) -> bool: ...


def hash_file(path: Path) -> BlobInfo:
    """SHA-256 and size of a file, read in constant memory (blocking: run it in a thread)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return BlobInfo(digest.hexdigest(), size)


def _missing(sha256: str) -> NotFound:
    return NotFound(f"the content {sha256[:12]}… is missing from the blob store", hint="restore from backup")


class LocalBlobStore:
    """Blobs as files under ``root/ab/cd/<sha256>``; temporary files under ``root/tmp``."""

    def __init__(self, root: str | Path, *, fsync: bool = True) -> None:
        self.root = Path(root)
        self._fsync = fsync
        self._tmp = self.root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)

    @property
    def scratch(self) -> Path:
        return self._tmp

    def path_of(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise _missing(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    async def put_bytes(self, data: bytes) -> BlobInfo:
        info = BlobInfo(hashlib.sha256(data).hexdigest(), len(data))
        if self.path_of(info.sha256).exists():
            return info
        await anyio.to_thread.run_sync(self._write_bytes, data, info)
        return info

    def _write_bytes(self, data: bytes, info: BlobInfo) -> None:
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix="put-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                if self._fsync:
                    os.fsync(f.fileno())
            self._install(Path(name), info.sha256)
        finally:
            Path(name).unlink(missing_ok=True)

    async def put_file(self, path: Path, info: BlobInfo) -> None:
        await anyio.to_thread.run_sync(self._adopt, path, info)

    def _adopt(self, path: Path, info: BlobInfo) -> None:
        if self._fsync:
            with path.open("rb+") as f:
                os.fsync(f.fileno())
        self._install(path, info.sha256)

    def _install(self, source: Path, sha256: str) -> None:
        target = self.path_of(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(source, target)  # atomic; same digest means same bytes, so a race is harmless
        except OSError:
            # a different filesystem: copy next to the target, then rename
            fd, name = tempfile.mkstemp(dir=target.parent, prefix=".in-")
            os.close(fd)
            shutil.copyfile(source, name)
            os.replace(name, target)
            source.unlink(missing_ok=True)

    async def read(self, sha256: str, start: int = 0, end: int | None = None) -> bytes:
        return await anyio.to_thread.run_sync(self._read, sha256, start, end)

    def _read(self, sha256: str, start: int, end: int | None) -> bytes:
        try:
            with self.path_of(sha256).open("rb") as f:
                f.seek(start)
                return f.read(-1 if end is None else max(0, end - start))
        except FileNotFoundError:
            raise _missing(sha256) from None

    async def stream(self, sha256: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        path = self.path_of(sha256)
        try:
            f = await anyio.open_file(path, "rb")
        except FileNotFoundError:
            raise _missing(sha256) from None
        async with f:
            await f.seek(start)
            left = None if end is None else end - start
            while left is None or left > 0:
                chunk = await f.read(CHUNK if left is None else min(CHUNK, left))
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk

    async def exists(self, sha256: str) -> bool:
        return self.path_of(sha256).exists()


class MemoryBlobStore:
    """Blobs in a dict (one process only; for library use and tests)."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}

    @property
    def scratch(self) -> Path:
        return Path(tempfile.gettempdir())

    async def put_bytes(self, data: bytes) -> BlobInfo:
        info = BlobInfo(hashlib.sha256(data).hexdigest(), len(data))
        self._blobs.setdefault(info.sha256, bytes(data))
        return info

    async def put_file(self, path: Path, info: BlobInfo) -> None:
        data = await anyio.Path(path).read_bytes()
        self._blobs.setdefault(info.sha256, data)
        await anyio.Path(path).unlink(missing_ok=True)

    async def read(self, sha256: str, start: int = 0, end: int | None = None) -> bytes:
        if sha256 not in self._blobs:
            raise _missing(sha256)
        return self._blobs[sha256][start:end]

    async def stream(self, sha256: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        data = await self.read(sha256, start, end)
        for i in range(0, len(data), CHUNK):
            yield data[i : i + CHUNK]

    async def exists(self, sha256: str) -> bool:
        return sha256 in self._blobs


class S3BlobStore:
    """Blobs as objects ``<prefix><sha256>`` in an S3-compatible bucket (boto3, run in worker threads)."""

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "blobs/",
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        scratch: str | Path | None = None,
        create_bucket: bool = False,
    ) -> None:
        try:
            import boto3  # type: ignore[import-untyped]
        except ImportError as exc:
            raise ConfigurationError(
                "the S3 blob store needs boto3", hint="install the extra: pip install 'toolbridge[s3]'"
            ) from exc
        self.bucket = bucket
        self.prefix = prefix
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
        )
        self._scratch = Path(scratch) if scratch else Path(tempfile.gettempdir())
        self._scratch.mkdir(parents=True, exist_ok=True)
        self._create_bucket = create_bucket

    @property
    def scratch(self) -> Path:
        return self._scratch

    async def ensure_bucket(self) -> None:
        await anyio.to_thread.run_sync(lambda: self._call("create_bucket", Bucket=self.bucket))

    def _call(self, method: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

        try:
            return getattr(self._client, method)(**kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                raise _missing(str(kwargs.get("Key", ""))[-64:]) from None
            if code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists") and method == "create_bucket":
                return None
            raise StorageError(
                f"S3 {method} failed: {code}", hint="check the bucket and credentials"
            ) from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 {method} failed: {exc}", hint="check the endpoint URL") from exc

    async def put_bytes(self, data: bytes) -> BlobInfo:
        info = BlobInfo(hashlib.sha256(data).hexdigest(), len(data))
        await anyio.to_thread.run_sync(
            lambda: self._call("put_object", Bucket=self.bucket, Key=self.prefix + info.sha256, Body=data)
        )
        return info

    async def put_file(self, path: Path, info: BlobInfo) -> None:
        def upload() -> None:
            self._call("upload_file", Filename=str(path), Bucket=self.bucket, Key=self.prefix + info.sha256)

        await anyio.to_thread.run_sync(upload)
        await anyio.Path(path).unlink(missing_ok=True)

    async def read(self, sha256: str, start: int = 0, end: int | None = None) -> bytes:
        return b"".join([chunk async for chunk in self.stream(sha256, start, end)])

    async def stream(self, sha256: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        if end is not None and end <= start:
            return
        wanted = f"bytes={start}-{'' if end is None else end - 1}"
        response = await anyio.to_thread.run_sync(
            lambda: self._call("get_object", Bucket=self.bucket, Key=self.prefix + sha256, Range=wanted)
        )
        body = response["Body"]
        try:
            while chunk := await anyio.to_thread.run_sync(body.read, CHUNK):
                yield chunk
        finally:
            body.close()

    async def exists(self, sha256: str) -> bool:
        try:
            await anyio.to_thread.run_sync(
                lambda: self._call("head_object", Bucket=self.bucket, Key=self.prefix + sha256)
            )
        except NotFound:
            return False
        return True
