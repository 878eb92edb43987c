"""Background jobs: one worker thread runs them in submission order.

A job is a function ``work(report)`` that calls ``report(progress_dict)`` as it goes and returns
a JSON-able result. ``GET /v1/jobs/{id}`` shows ``JobQueue.get(id)``. A ``HybridError`` fails the
job with its code and HTTP status (a busy index: 409 ``conflict``); any other exception fails it
with ``internal_error`` and goes to the server log, never to the client.

With a ``folder``, each job is also written there as ``<id>.json`` when it is queued, starts
and ends (progress stays in memory). After a restart finished jobs are still found, and
`JobQueue.unfinished` gives the jobs that were queued or running when the server stopped, so
their owner can run them again under the same id (`JobQueue.submit` with ``job_id``).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hybrid import HybridError

logger = logging.getLogger("hybrid.serve")

# Finished jobs remembered for GET /v1/jobs/{id}; the oldest are forgotten first.
KEEP_FINISHED = 1000
JOB_ID_RE = r"^[0-9a-f]{32}$"

# A job record's own fields; the rest of a record is the submitter's detail.
_RECORD_FIELDS = frozenset({"job", "kind", "status", "progress", "created", "started", "finished", "result", "error", "submitted"})

Report = Callable[[dict[str, Any]], None]
Work = Callable[[Report], dict[str, Any]]


@dataclass
class Job:
    """One unit of background work and what is known about it."""

    id: str
    kind: str
    detail: dict[str, Any]
    status: str = "queued"  # queued -> running -> done | failed
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def record(self) -> JobStatus:
        """What ``GET /v1/jobs/{id}`` shows of the job now."""
        return JobStatus(
            job=self.id, kind=self.kind, status=self.status, document=self.detail.get("document"),
            progress=dict(self.progress), created=_iso(self.created), started=_iso(self.started),
            finished=_iso(self.finished), result=self.result, error=self.error,
        )

    def to_dict(self) -> dict[str, Any]:
        """``record()``'s JSON; a document, result or error only when there is one."""
        body = self.record().model_dump(mode="json")
        return {key: value for key, value in body.items() if value is not None or key in ("started", "finished")}


class JobError(BaseModel):
    code: str
    status: int = Field(description="The HTTP status the failure stands for (409: the index was busy).")
    message: str


class JobStatus(BaseModel):
    """A background job: its state, progress, and result or error."""

    model_config = ConfigDict(extra="forbid")

    job: str
    kind: Literal["ingest"]
    status: Literal["queued", "running", "done", "failed"]
    document: dict[str, Any] | None = Field(None, description="The upload: name, sha256, bytes, uploaded, stored (its path under HYBRID_HOME/uploads).")
    progress: dict[str, Any] = Field(description="The ingest's counts so far (files_done, pages_done, ...).")
    created: str
    started: str | None
    finished: str | None
    result: dict[str, Any] | None = Field(None, description="When done: the JSON of `hybrid ingest --json`, and source.")
    error: JobError | None = Field(None, description="When failed.")


class JobQueue:
    """Runs submitted jobs one at a time on a worker thread (started on the first submit).

    Args:
        keep: finished jobs remembered (in memory, and on disk with a folder).
        folder: where jobs are written, so they outlast a restart; None keeps them in memory.
    """

    def __init__(self, keep: int = KEEP_FINISHED, folder: Path | None = None) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._queue: queue.Queue[tuple[Job, Work] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._keep = keep
        self._folder = folder
        self._worker: threading.Thread | None = None
        self._closed = False
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            self._forget_old_files()

    def submit(
        self, kind: str, work: Work, detail: dict[str, Any] | None = None, *, job_id: str | None = None
    ) -> Job:
        """Queue ``work``; returns its job (status ``queued``). ``job_id`` runs an unfinished
        job from before a restart again under its id."""
        job = Job(job_id or uuid.uuid4().hex, kind, dict(detail or {}))
        with self._lock:
            if self._closed:
                raise RuntimeError("the job queue is closed")
            self._jobs[job.id] = job
            self._forget_old()
            self._save(job)
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="hybrid-jobs", daemon=True)
                self._worker.start()
            self._queue.put((job, work))
        return job

    def get(self, job_id: str) -> dict[str, Any] | None:
        """A snapshot of the job as JSON (from before a restart too), or None for an unknown id."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                return job.to_dict()
        stored = self._load(job_id)
        # "submitted" orders unfinished jobs for a rerun: it is not part of the job's JSON.
        return None if stored is None else {key: value for key, value in stored.items() if key != "submitted"}

    def unfinished(self) -> list[dict[str, Any]]:
        """Jobs on disk that were queued or running when the server stopped, oldest first."""
        if self._folder is None:
            return []
        found = [self._load(path.stem) for path in self._folder.glob("*.json")]
        waiting = [job for job in found if job is not None and job["status"] in ("queued", "running")]
        return sorted(waiting, key=lambda job: job.get("submitted") or 0.0)

    def fail(self, record: dict[str, Any], code: str, message: str) -> None:
        """Mark an unfinished job from before a restart failed (it cannot run again); its
        details (the upload's ``document``) stay."""
        detail = {key: value for key, value in record.items() if key not in _RECORD_FIELDS}
        job = Job(record["job"], record["kind"], detail, status="failed", finished=time.time())
        job.error = {"code": code, "status": 410, "message": message}
        with self._lock:
            self._jobs[job.id] = job
            self._save(job)

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking jobs, let the running one finish (up to ``timeout`` s), stop the worker.

        Queued jobs fail, unless they are on disk: those run at the next start.
        """
        with self._lock:
            self._closed = True
            worker = self._worker
            for job in self._jobs.values():
                if job.status == "queued" and self._folder is None:
                    job.status, job.finished = "failed", time.time()
                    job.error = {"code": "stopped", "status": 503, "message": "the server stopped before this job ran; upload again"}
        self._queue.put(None)
        if worker is not None:
            worker.join(timeout)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            job, work = item
            with self._lock:
                if job.status != "queued":  # failed by close()
                    continue
                job.status, job.started = "running", time.time()
                self._save(job)
            try:
                result = work(lambda progress, job=job: self._progress(job, progress))
            except HybridError as exc:
                self._finish(job, error={"code": exc.code, "status": exc.status, "message": str(exc)})
            except Exception:  # a bug: the log has it, the client a generic line
                logger.exception("job %s (%s) failed", job.id, job.kind)
                self._finish(job, error={"code": "internal_error", "status": 500, "message": "internal error; the server log has the details"})
            else:
                self._finish(job, result=result)

    def _progress(self, job: Job, progress: dict[str, Any]) -> None:
        with self._lock:
            job.progress = dict(progress)

    def _finish(self, job: Job, *, result: dict[str, Any] | None = None, error: dict[str, Any] | None = None) -> None:
        with self._lock:
            job.status = "failed" if error is not None else "done"
            job.result, job.error, job.finished = result, error, time.time()
            self._save(job)

    def _forget_old(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.status in ("done", "failed")]
        for job_id in finished[: max(0, len(finished) - self._keep)]:
            del self._jobs[job_id]

    def _forget_old_files(self) -> None:
        assert self._folder is not None
        files = sorted(self._folder.glob("*.json"), key=lambda path: path.stat().st_mtime)
        for path in files[: max(0, len(files) - self._keep)]:
            path.unlink(missing_ok=True)
        for part in self._folder.glob(".*.tmp"):  # left by a write the server did not finish
            part.unlink(missing_ok=True)

    def _save(self, job: Job) -> None:
        # Called with the lock held. A failed write is logged: the job itself still runs.
        if self._folder is None:
            return
        path = self._folder / f"{job.id}.json"
        try:
            fd, tmp = tempfile.mkstemp(dir=self._folder, prefix=f".{job.id}-", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({**job.to_dict(), "submitted": job.created}, handle)  # the order to run again in
            os.replace(tmp, path)
        except OSError as exc:
            logger.warning("could not write job %s to %s: %s", job.id, path, exc)

    def _load(self, job_id: str) -> dict[str, Any] | None:
        if self._folder is None or not re.match(JOB_ID_RE, job_id):
            return None
        try:
            return json.loads((self._folder / f"{job_id}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None


def _iso(when: float | None) -> str | None:
    return None if when is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
