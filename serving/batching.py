"""Inference off the event loop, batched across concurrent requests.

One inference thread per server process (torch already spreads one batch over the cores). While it reads a batch,
new requests queue; the next batch takes everything queued (up to `max_batch` pages), so batching costs a lone
request no waiting and gives a loaded server the recognizer's batched throughput."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image

from model.recognizer import Prediction
from serving.models import ModelHolder

log = logging.getLogger(__name__)


@dataclass
class Result:
    prediction: Prediction
    model_version: str


@dataclass
class _Job:
    image: Image.Image
    future: asyncio.Future[Result]


class Batcher:
    def __init__(self, models: ModelHolder, max_batch: int = 8) -> None:
        self.models, self.max_batch = models, max_batch
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.pages = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="inference-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)

    async def predict(self, image: Image.Image) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(image, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self._queue.get()]
            while len(jobs) < self.max_batch and not self._queue.empty():
                jobs.append(self._queue.get_nowait())
            jobs = [job for job in jobs if not job.future.cancelled()]  # the client went away
            if not jobs:
                continue
            try:
                results = await loop.run_in_executor(self._executor, self._infer, [j.image for j in jobs])
            except Exception as exc:  # the whole batch failed: say so to each waiting request
                log.exception("inference failed for a batch of %d", len(jobs))
                results = [exc] * len(jobs)
            self.batches += 1
            self.pages += len(jobs)
            for job, result in zip(jobs, results, strict=True):
                if job.future.cancelled():
                    continue
                if isinstance(result, BaseException):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)

    def _infer(self, images: list[Image.Image]) -> list[Result | Exception]:
        served = self.models.current()  # one model for the whole batch, whatever a swap does meanwhile
        try:
            predictions = served.recognizer.predict_images(images)
            return [Result(p, served.version) for p in predictions]
        except Exception:
            if len(images) == 1:
                raise
        # One page broke the batch: read them one by one so only that page fails.
        results: list[Result | Exception] = []
        for image in images:
            try:
                results.append(Result(served.recognizer.predict_images([image])[0], served.version))
            except Exception as exc:
                results.append(exc)
        return results
