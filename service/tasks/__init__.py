"""The one table of the tasks this service serves: task name -> its `service.task.ServiceTask` (router,
request/response schemas, model info schema, batch function).

A new task adds its folder `service/tasks/<task>/` (schemas.py, routes.py, batch.py, and a `ServiceTask`
in its `__init__.py`) and one entry here; `service.app` includes each task's router from this table.
"""

from __future__ import annotations

from service.task import ServiceTask
from service.tasks.classify import CLASSIFY
from service.tasks.denoise import DENOISE
from service.tasks.forecast import FORECAST
from service.tasks.rollout import ROLLOUT

TASKS: dict[str, ServiceTask] = {t.name: t for t in (FORECAST, DENOISE, CLASSIFY, ROLLOUT)}
