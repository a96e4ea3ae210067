"""The Celery app of the cluster's workers: ``celery -A orchestration.celery_worker:app worker``.

It registers ``dagster-celery``'s step task on the profile's queue. Its configuration (broker,
result backend, late acknowledgement, the visibility timeout) is ``orchestration.cluster``'s
``celery_settings`` of ``HEPHAESTUS_PROFILE``, read when the worker configures the app — never at
import. At start the worker loads the job once, so the first step does not pay for the import.
"""

from __future__ import annotations

import os

from celery import Celery, signals
from dagster_celery.config import TASK_EXECUTE_PLAN_NAME
from dagster_celery.tasks import create_task
from kombu import Queue

app = Celery("dagster")
execute_plan = create_task(app)


@app.on_configure.connect
def _configure(sender: Celery, **_: object) -> None:
    from orchestration.cluster import celery_settings, settings_of

    settings = settings_of(os.environ.get("HEPHAESTUS_PROFILE", "cluster"))
    conf = celery_settings(settings)
    queue = settings.dagster.celery.queue
    conf["task_queues"] = [Queue(queue, routing_key=f"{queue}.#", queue_arguments={"x-max-priority": 10})]
    conf["task_routes"] = {
        TASK_EXECUTE_PLAN_NAME: {"queue": queue, "routing_key": f"{queue}.{TASK_EXECUTE_PLAN_NAME}"}
    }
    conf["task_queue_max_priority"] = 10
    sender.conf.update(conf)


@signals.worker_init.connect
def _load_job(**_: object) -> None:
    from orchestration.cluster import cluster_pipeline

    cluster_pipeline()
