"""The state of tus 1.0 uploads: a ``<id>.part`` file with the bytes and a ``<id>.json`` with the facts.

The offset is the size of the part file, so it survives restarts and is what ``HEAD`` reports. Bytes
stream from the request to the file in chunks (constant memory). A ``PATCH`` carrying ``Upload-Checksum``
is verified when its body ends; on a mismatch — or when the body is cut off — the file is truncated back to
where that ``PATCH`` started, so a resume never builds on bytes nobody vouched for. Upload ids are long
random tokens: the upload URL is the capability to continue it (as tus servers commonly do) — for as long
as its creator may still write there: every request looks the creator up again (see ``_workspace.py``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import anyio
import anyio.to_thread

from toolbridge.errors import BadRequest, ChecksumMismatch, Conflict, NotFound, PayloadTooLarge

__all__ = ["Upload", "UploadStore", "parse_metadata"]

_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


@dataclass(frozen=True, slots=True)
class Upload:
    id: str
    workspace: str
    path: str
    principal: str
    length: int
    expires_at: float
    metadata: Mapping[str, str] = field(default_factory=dict)
    key: str = ""
    """The API key the upload was created under ("" for none): revoking it ends the upload."""
    offset: int = 0


def parse_metadata(header: str | None) -> dict[str, str]:
    """``Upload-Metadata: key base64,key2 base64`` → a dict (values decoded as UTF-8)."""
    result: dict[str, str] = {}
    for item in (header or "").split(","):
        if not item.strip():
            continue
        key, _, value = item.strip().partition(" ")
        if key in result:  # tus 1.0: keys MUST be unique; which one counted was a guess
            raise BadRequest(f"Upload-Metadata names {key!r} twice", hint="send each key once")
        try:
            result[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8") if value else ""
        except (ValueError, UnicodeDecodeError):
            raise BadRequest(
                f"Upload-Metadata value of {key!r} is not base64", hint="encode values as base64"
            ) from None
    return result


class UploadStore:
    def __init__(
        self, folder: Path, *, clock: Callable[[], float], expiry: float = 86_400.0, max_size: int = 1 << 40
    ) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.expiry = expiry
        self.max_size = max_size
        self._locks: dict[str, anyio.Lock] = {}

    def _files(self, upload_id: str) -> tuple[Path, Path]:
        if len(upload_id) != 32 or not set(upload_id) <= _ID_CHARS:
            raise _gone()
        return self.folder / f"{upload_id}.json", self.folder / f"{upload_id}.part"

    async def create(
        self,
        workspace: str,
        path: str,
        principal: str,
        length: int,
        metadata: Mapping[str, str],
        *,
        key: str = "",
    ) -> Upload:
        if length < 0 or length > self.max_size:
            raise PayloadTooLarge("the upload", size=length, limit=self.max_size)
        upload = Upload(
            secrets.token_urlsafe(24),
            workspace,
            path,
            principal,
            length,
            self.clock() + self.expiry,
            dict(metadata),
            key,
        )
        info, part = self._files(upload.id)
        await anyio.Path(part).write_bytes(b"")
        await anyio.Path(info).write_text(
            json.dumps({k: v for k, v in asdict(upload).items() if k != "offset"})
        )
        return upload

    async def get(self, upload_id: str) -> Upload:
        info, part = self._files(upload_id)
        try:
            data = json.loads(await anyio.Path(info).read_text())
            offset = (await anyio.Path(part).stat()).st_size
        except (FileNotFoundError, json.JSONDecodeError):
            raise _gone() from None
        upload = Upload(**data, offset=offset)
        if upload.expires_at < self.clock():
            await self.delete(upload_id)
            raise _gone()
        return upload

    def lock(self, upload_id: str) -> anyio.Lock:
        return self._locks.setdefault(upload_id, anyio.Lock())

    async def append(
        self, upload: Upload, offset: int, body: AsyncIterator[bytes], checksum: tuple[str, bytes] | None
    ) -> int:
        """Write ``body`` at ``offset`` (which must be the current offset); return the new offset."""
        if offset != upload.offset:
            raise Conflict(
                f"Upload-Offset {offset} does not match the upload's offset {upload.offset}",
                hint="send HEAD to learn the offset, then PATCH from there",
            )
        digest = hashlib.sha256() if checksum is not None else None
        _, part = self._files(upload.id)
        written = 0
        complete = False
        try:
            async with await anyio.open_file(part, "r+b") as f:
                await f.seek(offset)
                async for chunk in body:
                    written += len(chunk)
                    if offset + written > upload.length:
                        raise PayloadTooLarge("the upload", size=offset + written, limit=upload.length)
                    if digest is not None:
                        digest.update(chunk)
                    await f.write(chunk)
            complete = True
        finally:
            if not complete and checksum is not None:
                await anyio.to_thread.run_sync(os.truncate, part, offset)
        if checksum is not None and digest is not None and digest.digest() != checksum[1]:
            await anyio.to_thread.run_sync(os.truncate, part, offset)
            raise ChecksumMismatch(
                "the chunk's sha256 does not match Upload-Checksum; it was discarded",
                current={"offset": offset},
                hint="send the chunk again from the same offset",
            )
        return offset + written

    def part_path(self, upload: Upload) -> Path:
        return self._files(upload.id)[1]

    async def delete(self, upload_id: str) -> None:
        info, part = self._files(upload_id)
        await anyio.Path(info).unlink(missing_ok=True)
        await anyio.Path(part).unlink(missing_ok=True)
        self._locks.pop(upload_id, None)

    async def sweep(self) -> int:
        """Remove expired uploads; return how many."""
        removed = 0
        for info in list(self.folder.glob("*.json")):
            try:
                await self.get(info.stem)
            except NotFound:
                removed += 1
        return removed


def _gone() -> NotFound:
    return NotFound("no such upload (it finished, expired or was terminated)", hint="create a new upload")
