"""The denoise task in the service: its schemas, its route and its batch function, as one `ServiceTask`."""

from __future__ import annotations

from service.task import ServiceTask
from service.tasks.denoise.batch import predict_batch
from service.tasks.denoise.routes import PATH, TASK, router
from service.tasks.denoise.schemas import DenoiseModelInfo, DenoiseRequest, DenoiseResponse

DENOISE = ServiceTask(
    name=TASK,
    path=router.prefix + PATH,
    router=router,
    request=DenoiseRequest,
    response=DenoiseResponse,
    info=DenoiseModelInfo,
    run_batch=predict_batch,
)
