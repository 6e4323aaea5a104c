"""The classify task in the service: its schemas, its routes (JSON and bulk) and its batch function, as
one `ServiceTask`."""

from __future__ import annotations

from service.task import ServiceTask
from service.tasks.classify.batch import predict_batch
from service.tasks.classify.routes import PATH, TASK, router
from service.tasks.classify.schemas import ClassifyModelInfo, ClassifyRequest, ClassifyResponse

CLASSIFY = ServiceTask(
    name=TASK,
    path=router.prefix + PATH,
    router=router,
    request=ClassifyRequest,
    response=ClassifyResponse,
    info=ClassifyModelInfo,
    run_batch=predict_batch,
    streamed=(router.prefix + PATH + "/bulk",),  # bounded by SEER_CLASSIFY_MAX_UPLOAD_BYTES as it is read
)
