"""The forecast task in the service: its schemas, its route and its batch function, as one `ServiceTask`."""

from __future__ import annotations

from service.task import ServiceTask
from service.tasks.forecast.batch import predict_batch
from service.tasks.forecast.routes import PATH, TASK, router
from service.tasks.forecast.schemas import ForecastModelInfo, ForecastRequest, ForecastResponse

FORECAST = ServiceTask(
    name=TASK,
    path=router.prefix + PATH,
    router=router,
    request=ForecastRequest,
    response=ForecastResponse,
    info=ForecastModelInfo,
    run_batch=predict_batch,
)
