"""Adapters and documents at runtime: list and activate adapter versions, upload PDFs.

``GET /v1/adapters`` needs the query key; activating a version, uploading a document and reading
a job need the admin key (serve/auth.py). An upload is stored under ``HYBRID_HOME/uploads`` as
``<sha256>/<name>.pdf``, where the name is the client's file name cut to its last part and to
letters, digits and ``._-()+`` and spaces, so citations show it; metadata in ``<sha256>.json``) and
ingested by the one background worker (serve/jobs.py); queries keep working meanwhile and see
the document once the job is done. Jobs are kept under ``HYBRID_HOME/jobs``, and an upload
whose job the server did not finish is ingested again at the next start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from hybrid import HybridError, NotFoundError, Pipeline
from serve import limits
from serve.auth import require_admin_key, require_query_key
from serve.deps import get_pipeline
from serve.jobs import JOB_ID_RE, KEEP_FINISHED, JobQueue, JobStatus
from serve.schemas import STRICT, ErrorResponse

ADAPTER_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # tune.registry's rule, checked again there
VERSION = r"^v[1-9][0-9]{0,5}$"
UPLOAD_FIELD = "file"
# A PDF starts with "%PDF-" within its first 1,024 bytes (ISO 32000-1, annex H.3).
PDF_MAGIC, MAGIC_WINDOW = b"%PDF-", 1024
COPY_CHUNK = 1 << 20
# A partial upload untouched for this long (seconds) was left by a server that stopped mid-copy.
STALE_PART_SECONDS = 3600
# The characters a stored upload's file name keeps (`_file_name`); others become "_".
NAME_CHARS = r"\w.()+ -"
# A stored upload, relative to the uploads folder: "<sha256>/<name made safe>.pdf".
STORED_RE = rf"[0-9a-f]{{64}}/[{NAME_CHARS}]{{1,160}}\.pdf"

ERRORS = {status: {"model": ErrorResponse} for status in (401, 403, 404, 409, 413, 415, 422, 503)}
PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
logger = logging.getLogger("hybrid.serve")


class UploadError(HybridError):
    """An upload that cannot be ingested: not multipart, no file, empty, not a PDF, too big."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


@asynccontextmanager
async def _jobs_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The job worker lives as long as the app (inside its lifespan: the pipeline is loaded).

    Jobs are kept under ``HYBRID_HOME/jobs``; uploads that were queued or being ingested when
    the server stopped are ingested again at start-up, under the same job ids (ingesting is
    idempotent: what was already indexed is skipped).
    """
    pipeline: Pipeline = app.state.pipeline
    jobs = app.state.jobs = JobQueue(folder=pipeline.settings.jobs_dir)
    uploads = pipeline.settings.uploads_dir
    for record in jobs.unfinished():
        document = record.get("document") or {}
        stored = document.get("stored")
        path = uploads / stored if isinstance(stored, str) and re.fullmatch(STORED_RE, stored) else None
        if record.get("kind") == "ingest" and path is not None and path.is_file():
            logger.info("ingesting %s again: the server stopped during its job %s", document.get("name"), record["job"])
            jobs.submit("ingest", partial(_ingest, pipeline, path), {"document": document}, job_id=record["job"])
        else:
            jobs.fail(record, "upload_missing", "the server stopped during this job and its upload is gone; upload again")
    yield
    await run_in_threadpool(jobs.close)


router = APIRouter(prefix="/v1", lifespan=_jobs_lifespan)


class AdapterOut(BaseModel):
    name: str
    versions: list[str]
    active: str | None = Field(description="The version NAME stands for; null when none is activated.")


class ActivateRequest(BaseModel):
    model_config = STRICT

    version: str = Field(pattern=VERSION, description="The version to activate, as vN.")


class ActivateResponse(BaseModel):
    name: str
    active: str
    previous: str | None


class JobAccepted(BaseModel):
    job: str
    status: Literal["queued"]


def _jobs(request: Request) -> JobQueue:
    return request.app.state.jobs


@router.get("/adapters", response_model=list[AdapterOut], responses=ERRORS, dependencies=[Depends(require_query_key)])
def list_adapters(pipeline: PipelineDep) -> list[dict]:
    """Every adapter in the registry, its versions (oldest first) and the active one."""
    found: dict[str, list[str]] = {}
    for version in pipeline.adapters.versions():
        found.setdefault(version.name, []).append(f"v{version.version}")
    return [
        {"name": name, "versions": versions, "active": _version_of(pipeline.adapters.active(name))}
        for name, versions in found.items()
    ]


@router.post(
    "/adapters/{name}/activate",
    response_model=ActivateResponse,
    responses=ERRORS,
    dependencies=[Depends(require_admin_key)],
)
def activate_adapter(
    name: Annotated[str, PathParam(pattern=ADAPTER_NAME)], body: ActivateRequest, pipeline: PipelineDep
) -> dict:
    """Make NAME stand for NAME@vN. Requests that use NAME (or the server's default, when it is
    NAME) get the new version from the next one on; requests in flight finish on the old one."""
    before, now = pipeline.adapters.activate(f"{name}@{body.version}")
    return {"name": name, "active": f"v{now.version}", "previous": _version_of(before)}


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [UPLOAD_FIELD],
                    "properties": {UPLOAD_FIELD: {"type": "string", "format": "binary", "description": "One PDF."}},
                }
            }
        },
    }
}


@router.post(
    "/documents",
    status_code=202,
    response_model=JobAccepted,
    responses=ERRORS,
    dependencies=[Depends(require_admin_key)],
    openapi_extra=UPLOAD_BODY,
)
async def upload_document(request: Request, pipeline: PipelineDep) -> JSONResponse:
    """Upload one PDF (multipart field ``file``); 202 with the job that ingests it."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UploadError(415, "unsupported_media_type", f"send the PDF as multipart/form-data in a field named {UPLOAD_FIELD!r}")
    form = await request.form(max_files=1, max_fields=8)
    try:
        upload = form.get(UPLOAD_FIELD)
        if not isinstance(upload, UploadFile):
            raise UploadError(422, "invalid_request", f"no file in the field {UPLOAD_FIELD!r}; send the PDF as {UPLOAD_FIELD}=@report.pdf")
        uploads = pipeline.settings.uploads_dir
        document = await run_in_threadpool(_store, upload, uploads)
    finally:
        await form.close()
    path = uploads / document["stored"]
    job = _jobs(request).submit("ingest", partial(_ingest, pipeline, path), {"document": document})
    return JSONResponse({"job": job.id, "status": job.status}, status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})


@router.get(
    "/jobs/{job_id}",
    response_model=JobStatus,
    response_model_exclude_unset=True,
    responses=ERRORS,
    dependencies=[Depends(require_admin_key)],
)
def get_job(job_id: str, request: Request) -> dict:
    """A job's status (queued, running, done, failed), its progress, and its result or error."""
    found = _jobs(request).get(job_id) if re.match(JOB_ID_RE, job_id) else None
    if found is None:
        raise NotFoundError(f"no job {job_id!r}; job ids come from POST /v1/documents (the last {KEEP_FINISHED} finished jobs are kept)")
    return found


def _version_of(version: Any) -> str | None:
    return None if version is None else f"v{version.version}"


def _store(upload: UploadFile, uploads: Path) -> dict[str, Any]:
    """Copy the upload to ``uploads/<sha256>/<name>.pdf`` (written aside, then renamed); its
    metadata beside the folder. The same content uploaded again keeps its first file, so it is
    indexed once."""
    name = _display_name(upload.filename)
    uploads.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(uploads)
    digest, size, head = hashlib.sha256(), 0, b""
    fd, tmp = tempfile.mkstemp(dir=uploads, prefix=".upload-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := upload.file.read(COPY_CHUNK):
                size += len(chunk)
                if size > limits.MAX_UPLOAD_BYTES:
                    raise UploadError(413, "too_large", f"{name} is over the upload limit of {limits.MAX_UPLOAD_BYTES:,} bytes")
                if len(head) < MAGIC_WINDOW:
                    head += chunk[: MAGIC_WINDOW - len(head)]
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise UploadError(422, "empty_file", f"{name} is empty; upload a PDF")
        if PDF_MAGIC not in head:
            raise UploadError(422, "not_a_pdf", f"{name} is not a PDF (no %PDF- header); upload a PDF")
        sha = digest.hexdigest()
        folder = uploads / sha
        folder.mkdir(exist_ok=True)
        earlier = sorted(folder.glob("*.pdf"))
        stored = earlier[0] if earlier else folder / _file_name(name)
        os.replace(tmp, stored)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    document = {"name": name, "sha256": sha, "bytes": size, "uploaded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "stored": f"{sha}/{stored.name}"}
    _write_json(uploads / f"{sha}.json", document)
    return document


def _file_name(name: str) -> str:
    """``name`` as a file name that cannot be a path: word characters, ``._-()+`` and spaces."""
    cleaned = re.sub(rf"[^{NAME_CHARS}]", "_", name).strip(" .")
    stem = cleaned[:-4] if cleaned.lower().endswith(".pdf") else cleaned
    return f"{stem[:120].strip(' .') or 'upload'}.pdf"


def _remove_stale_parts(uploads: Path) -> None:
    cutoff = time.time() - STALE_PART_SECONDS
    for part in uploads.glob(".upload-*.part"):
        with contextlib.suppress(OSError):  # gone meanwhile: another upload cleaned it
            if part.stat().st_mtime < cutoff:
                part.unlink()


def _ingest(pipeline: Pipeline, path: Path, report: Any) -> dict[str, Any]:
    def on_progress(progress: Any) -> None:
        report({**dataclasses.asdict(progress), "pages_estimated": progress.pages_estimated})

    outcome = pipeline.ingest([path], on_progress=on_progress)
    if outcome.files_failed:
        raise UploadError(422, "unreadable_pdf", f"the PDF could not be ingested: {outcome.files_failed[0].error}")
    pipeline.reload_index()  # the first query after the job need not pay for loading the vectors
    return {**outcome.to_dict(), "source": str(path)}


def _display_name(filename: str | None) -> str:
    """The client's file name for messages and metadata only: its last part, printable, short."""
    last = re.split(r"[\\/]", filename or "")[-1]
    cleaned = "".join(ch for ch in last if ch.isprintable()).strip()
    return cleaned[:255] or "upload.pdf"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
    os.replace(tmp, path)
