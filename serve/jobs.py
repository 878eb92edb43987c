"""Background jobs: one worker thread runs them in submission order; their state is in memory.

A job is a function ``work(report)`` that calls ``report(progress_dict)`` as it goes and returns
a JSON-able result. ``GET /v1/jobs/{id}`` shows ``JobQueue.get(id)``. A ``HybridError`` fails the
job with its code and HTTP status (a busy index: 409 ``conflict``); any other exception fails it
with ``internal_error`` and goes to the server log, never to the client.

Jobs are not persisted: after a restart their ids are unknown (404), while what they ingested
stays in the index.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hybrid import HybridError

logger = logging.getLogger("hybrid.serve")

# Finished jobs remembered for GET /v1/jobs/{id}; the oldest are forgotten first.
KEEP_FINISHED = 1000
JOB_ID_RE = r"^[0-9a-f]{32}$"

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

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "job": self.id,
            "kind": self.kind,
            "status": self.status,
            **self.detail,
            "progress": dict(self.progress),
            "created": _iso(self.created),
            "started": _iso(self.started),
            "finished": _iso(self.finished),
        }
        if self.result is not None:
            body["result"] = self.result
        if self.error is not None:
            body["error"] = self.error
        return body


class JobQueue:
    """Runs submitted jobs one at a time on a worker thread (started on the first submit)."""

    def __init__(self, keep: int = KEEP_FINISHED) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._queue: queue.Queue[tuple[Job, Work] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._keep = keep
        self._worker: threading.Thread | None = None
        self._closed = False

    def submit(self, kind: str, work: Work, detail: dict[str, Any] | None = None) -> Job:
        """Queue ``work``; returns its job (status ``queued``)."""
        job = Job(uuid.uuid4().hex, kind, dict(detail or {}))
        with self._lock:
            if self._closed:
                raise RuntimeError("the job queue is closed")
            self._jobs[job.id] = job
            self._forget_old()
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="hybrid-jobs", daemon=True)
                self._worker.start()
            self._queue.put((job, work))
        return job

    def get(self, job_id: str) -> dict[str, Any] | None:
        """A snapshot of the job as JSON, or None for an unknown id."""
        with self._lock:
            job = self._jobs.get(job_id)
            return job.to_dict() if job is not None else None

    def close(self, timeout: float = 30.0) -> None:
        """Fail the queued jobs, let the running one finish (up to ``timeout`` s), stop the worker."""
        with self._lock:
            self._closed = True
            worker = self._worker
            for job in self._jobs.values():
                if job.status == "queued":
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

    def _forget_old(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.status in ("done", "failed")]
        for job_id in finished[: max(0, len(finished) - self._keep)]:
            del self._jobs[job_id]


def _iso(when: float | None) -> str | None:
    return None if when is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
