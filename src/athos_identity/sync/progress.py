"""`athos-identity sync`: a REST client of the running service, with a rich progress bar."""

from __future__ import annotations

import time
import uuid

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

POLL_SECONDS = 1.0
ENDED = ("succeeded", "failed", "cancelled")


def _client(base: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=10)


class AlreadyRunning(Exception):
    """The store has a run queued or running already (the scheduler's, say)."""

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id


def start_run(base: str, key: str, connector_id: uuid.UUID, mode: str, err: Console) -> str:
    with _client(base, key) as client:
        response = client.post(f"/v1/connectors/{connector_id}/syncs", json={"mode": mode})
    if response.status_code == 202:
        return str(response.json()["id"])
    problem = response.json() if response.content else {}
    if response.status_code == 409 and problem.get("run_id"):
        raise AlreadyRunning(str(problem["run_id"]))
    err.print(f"[red]error {response.status_code}:[/red] {problem.get('detail', response.text)}")
    raise typer.Exit(1)


def follow_run(base: str, key: str, run_id: str, console: Console) -> str:
    columns = (
        TextColumn("[bold]{task.fields[stream]}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn(
            "{task.completed:,.0f} records · {task.fields[rate]}/s · skipped {task.fields[skipped]}"
        ),
        TimeRemainingColumn(),
    )
    with _client(base, key) as client, Progress(*columns, console=console) as progress:
        task = progress.add_task("sync", total=None, stream="queued", rate="-", skipped=0)
        while True:
            run = client.get(f"/v1/syncs/{run_id}").raise_for_status().json()
            records = run["customers"] + run["orders"]
            progress.update(
                task,
                completed=records,
                total=run["estimated_total"] or None,
                stream=run["stream"] or run["status"],
                rate=run["records_per_second"] or "-",
                skipped=run["skipped"],
            )
            if run["status"] in ENDED:
                break
            time.sleep(POLL_SECONDS)
    console.print(
        f"{run['status']}: {run['customers']:,} customers, {run['orders']:,} orders, "
        f"{run['skipped']:,} identifiers skipped, {run['deleted']:,} deleted"
        + (f" — {run['last_error']}" if run["last_error"] else "")
    )
    return str(run["status"])
