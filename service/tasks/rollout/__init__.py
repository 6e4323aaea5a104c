"""The rollout task in the service: its schemas, its route and its batch function, as one `ServiceTask`."""

from __future__ import annotations

from service.task import ServiceTask
from service.tasks.rollout.batch import predict_batch
from service.tasks.rollout.routes import PATH, TASK, router
from service.tasks.rollout.schemas import RolloutModelInfo, RolloutRequest, RolloutResponse

ROLLOUT = ServiceTask(
    name=TASK,
    path=router.prefix + PATH,
    router=router,
    request=RolloutRequest,
    response=RolloutResponse,
    info=RolloutModelInfo,
    run_batch=predict_batch,
)
