"""PDF uploads at runtime: POST /v1/documents -> a background ingest job -> GET /v1/jobs/{id};
queries keep working meanwhile and find the document once the job is done."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import pytest

from tests.support.live_server import wait_for_job
from tests.support.pdfs import make_pdf, make_truncated_pdf

NEW_FACT = "The lighthouse keeper logged forty seven storms during the winter season."


def _upload(client, data: bytes, name: str = "lighthouse log.pdf"):
    return client.post("/v1/documents", files={"file": (name, data, "application/pdf")})


@pytest.fixture
def new_pdf(tmp_path: Path) -> bytes:
    return make_pdf(tmp_path / "upload.pdf", [NEW_FACT, "Page two of the log, about the lamp and its oil."]).read_bytes()


def test_an_uploaded_pdf_is_ingested_and_then_found(client, home, new_pdf) -> None:
    before = client.post("/v1/search", json={"query": "lighthouse keeper storms", "k": 1}).json()
    assert "lighthouse" not in before["hits"][0]["text"]
    response = _upload(client, new_pdf)
    assert response.status_code == 202
    job = response.json()["job"]
    assert response.headers["location"] == f"/v1/jobs/{job}"
    done = wait_for_job(client, job)
    assert done["status"] == "done", done
    assert done["document"]["name"] == "lighthouse log.pdf" and done["document"]["bytes"] == len(new_pdf)
    assert done["result"]["files_added"] == 1 and done["result"]["pages"] == 2
    assert done["progress"]["files_done"] == 1 and done["progress"]["pages_done"] == 2
    sha = hashlib.sha256(new_pdf).hexdigest()
    stored = home / "uploads" / sha / "lighthouse log.pdf"  # citations show the client's file name
    assert stored.read_bytes() == new_pdf and done["result"]["source"] == str(stored)
    meta = json.loads((home / "uploads" / f"{sha}.json").read_text())
    assert meta["name"] == "lighthouse log.pdf" and meta["stored"] == f"{sha}/lighthouse log.pdf"
    after = client.post("/v1/search", json={"query": "lighthouse keeper storms", "k": 1}).json()
    assert after["hits"][0]["source"] == str(stored) and "forty seven storms" in after["hits"][0]["text"]


def test_the_same_pdf_twice_is_stored_once_and_left_unchanged(client, home, new_pdf) -> None:
    assert wait_for_job(client, _upload(client, new_pdf).json()["job"])["status"] == "done"
    again = wait_for_job(client, _upload(client, new_pdf, name="copy.pdf").json()["job"])
    assert again["status"] == "done" and again["result"]["files_unchanged"] == 1 and again["result"]["files_added"] == 0
    assert [p.name for p in (home / "uploads").rglob("*.pdf")] == ["lighthouse log.pdf"]  # the first name stays


def test_queries_keep_working_while_a_job_runs(client, pipeline, new_pdf, monkeypatch) -> None:
    entered, release = threading.Event(), threading.Event()
    real_ingest = pipeline.ingest

    def slow_ingest(*args, **kwargs):
        entered.set()
        assert release.wait(30)
        return real_ingest(*args, **kwargs)

    monkeypatch.setattr(pipeline, "ingest", slow_ingest)
    job = _upload(client, new_pdf).json()["job"]
    try:
        assert entered.wait(30)
        assert client.get(f"/v1/jobs/{job}").json()["status"] == "running"
        queued = _upload(client, new_pdf, name="second.pdf").json()["job"]  # one worker: this one waits
        assert client.get(f"/v1/jobs/{queued}").json()["status"] == "queued"
        answer = client.post("/v1/query", json={"question": "How much did revenue grow?"})
        assert answer.status_code == 200 and answer.json()["route"] == "rag"
    finally:
        release.set()
    assert wait_for_job(client, job)["status"] == "done" and wait_for_job(client, queued)["status"] == "done"


def test_a_busy_index_fails_the_job_with_a_409(client, pipeline, new_pdf) -> None:
    from ingest.lock import writer_lock  # what a `hybrid ingest` in another process holds

    with writer_lock(pipeline.settings.index_dir):
        failed = wait_for_job(client, _upload(client, new_pdf).json()["job"])
    assert failed["status"] == "failed" and "result" not in failed
    assert failed["error"]["status"] == 409 and failed["error"]["code"] == "conflict"
    assert "another ingest" in failed["error"]["message"]
    retried = wait_for_job(client, _upload(client, new_pdf).json()["job"])
    assert retried["status"] == "done"


def test_a_broken_pdf_fails_its_job_and_the_index_keeps_working(client, tmp_path) -> None:
    broken = make_truncated_pdf(tmp_path / "broken.pdf").read_bytes()
    failed = wait_for_job(client, _upload(client, broken).json()["job"])
    assert failed["status"] == "failed" and failed["error"]["code"] == "unreadable_pdf"
    assert failed["error"]["message"].startswith("the PDF could not be ingested")
    assert client.post("/v1/search", json={"query": "revenue"}).status_code == 200


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"files": {"file": ("a.pdf", b"", "application/pdf")}}, 422, "empty_file"),
        ({"files": {"file": ("a.pdf", b"<html>not a pdf</html>", "application/pdf")}}, 422, "not_a_pdf"),
        ({"files": {"other": ("a.pdf", b"%PDF-1.4", "application/pdf")}}, 422, "invalid_request"),
        ({"data": {"file": "just text"}}, 415, "unsupported_media_type"),  # urlencoded, no file
        ({"content": b"%PDF-1.4", "headers": {"content-type": "application/pdf"}}, 415, "unsupported_media_type"),
        ({"json": {"file": "x"}}, 415, "unsupported_media_type"),
    ],
)
def test_bad_uploads_are_4xx_json_and_leave_nothing_behind(client, home, kwargs, status, code) -> None:
    response = client.post("/v1/documents", **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code and response.json()["error"]["message"]
    uploads = home / "uploads"
    assert not uploads.exists() or not list(uploads.iterdir())


def test_two_files_in_one_upload_are_refused(client) -> None:
    pdf = ("a.pdf", b"%PDF-1.4", "application/pdf")
    response = client.post("/v1/documents", files=[("file", pdf), ("file", pdf)])
    assert response.status_code == 400 and "error" in response.json()


def test_an_unknown_job_is_a_404(client) -> None:
    response = client.get("/v1/jobs/" + "a" * 32)
    assert response.status_code == 404 and "POST /v1/documents" in response.json()["error"]["message"]


def test_a_partial_upload_left_by_a_stopped_server_is_removed(client, home, new_pdf) -> None:
    import os

    uploads = home / "uploads"
    uploads.mkdir(parents=True)
    stale, fresh = uploads / ".upload-old.part", uploads / ".upload-new.part"
    stale.write_bytes(b"%PDF-half")
    fresh.write_bytes(b"%PDF-in progress")  # another upload being copied right now
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    assert _upload(client, new_pdf).status_code == 202
    assert not stale.exists() and fresh.exists()


def test_jobs_outlast_a_restart_and_an_interrupted_upload_is_ingested_again(pipeline, home, new_pdf) -> None:
    from fastapi.testclient import TestClient

    from serve import create_app

    def app_client():
        return TestClient(create_app(pipeline.settings, pipeline=pipeline), raise_server_exceptions=False)

    with app_client() as client:
        finished = wait_for_job(client, _upload(client, new_pdf).json()["job"])
    assert finished["status"] == "done"
    # A server that died while ingesting a second upload left its file and its job "running".
    sha = "0" * 64  # a folder name only: the content is the first upload's, so nothing is indexed twice
    (home / "uploads" / sha).mkdir(parents=True)
    (home / "uploads" / sha / "storm log.pdf").write_bytes(new_pdf)
    document = {"name": "storm log.pdf", "sha256": sha, "bytes": len(new_pdf), "stored": f"{sha}/storm log.pdf"}
    interrupted = {"job": "b" * 32, "kind": "ingest", "status": "running", "document": document, "progress": {},
                   "created": "2026-11-29T05:00:00Z", "started": "2026-11-29T05:00:01Z", "finished": None}
    gone = {**interrupted, "job": "c" * 32, "status": "queued", "document": {**document, "stored": f"{'d' * 64}/x.pdf"}}
    outside = {**interrupted, "job": "e" * 32, "document": {**document, "stored": "../../secrets.pdf"}}
    for record in (interrupted, gone, outside):
        (home / "jobs" / f"{record['job']}.json").write_text(json.dumps(record))

    with app_client() as client:
        assert client.get(f"/v1/jobs/{finished['job']}").json() == finished  # from before the restart
        again = wait_for_job(client, "b" * 32)
        assert again["status"] == "done" and again["document"]["name"] == "storm log.pdf", again
        assert again["result"]["files_unchanged"] + again["result"]["files_added"] == 1
        for job in ("c" * 32, "e" * 32):
            failed = client.get(f"/v1/jobs/{job}").json()
            assert failed["status"] == "failed" and failed["error"]["code"] == "upload_missing"
            assert failed["document"]["name"] == "storm log.pdf"  # what was uploaded stays on record
        assert client.get("/v1/jobs/" + "f" * 32).status_code == 404


def test_a_job_queue_with_a_folder_keeps_queued_jobs_for_the_next_start(tmp_path) -> None:
    from serve.jobs import JobQueue

    started, release = threading.Event(), threading.Event()

    def blocking(report):
        started.set()
        release.wait(10)
        return {"ok": True}

    jobs = JobQueue(folder=tmp_path, keep=2)
    first = jobs.submit("ingest", blocking, {"document": {"name": "a.pdf"}})
    assert started.wait(10)
    second = jobs.submit("ingest", lambda report: {"ok": True}, {"document": {"name": "b.pdf"}})
    # What a restart would find now: one job running, one queued, oldest first.
    waiting = JobQueue(folder=tmp_path, keep=2).unfinished()
    assert [(job["job"], job["status"]) for job in waiting] == [(first.id, "running"), (second.id, "queued")]
    release.set()
    jobs.close()
    assert JobQueue(folder=tmp_path).get(first.id)["status"] == "done"
    assert JobQueue(folder=tmp_path).get(second.id)["status"] == "done"
    assert JobQueue(folder=tmp_path).get("../" + first.id) is None
    for _ in range(3):
        jobs = JobQueue(folder=tmp_path, keep=2)
        jobs.submit("ingest", lambda report: {"ok": True})
        jobs.close()
    assert len(list(tmp_path.glob("*.json"))) <= 3  # the oldest files go at the next start
