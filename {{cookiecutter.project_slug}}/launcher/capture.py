"""The CreateTrainingJob request as the SDK hands it to botocore: recorded, or held back.

* ``record``: a real submission; the exact request is kept for printing and checks.
* ``hold_back``: the SDK does all its work (uploads src/, builds the request) but the request
  itself is stopped before it is sent: ``--local-job`` runs it here instead.
* ``hold_back(offline=True)``: nothing at all is sent: every other AWS call gets an empty answer
  (``--dry-run``). The SDK's IAM role check is skipped then, since it needs AWS.

botocore events on the session the SDK is given do this; clients made from that session inherit
the handlers, so only that session must be created inside the ``with`` block.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from botocore.awsrequest import AWSResponse

CREATE_EVENT = "before-parameter-build.sagemaker.CreateTrainingJob"


class _NoFailureAdvice(logging.Filter):
    """SDK v2 logs "check the troubleshooting guide" for any exception out of CreateTrainingJob,
    including the one that holds the request back on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "troubleshooting" not in record.getMessage()


class RequestHeldBack(Exception):  # noqa: N818  (a signal, caught by the adapters' callers)
    """Raised from inside the SDK when the CreateTrainingJob request is complete; carries it."""

    def __init__(self, request: dict):
        super().__init__("CreateTrainingJob held back")
        self.request = request


@contextmanager
def record(boto_session, event: str = CREATE_EVENT) -> Iterator[list[dict]]:
    """Append every request of ``event`` (default: CreateTrainingJob's) made through ``boto_session``
    to the yielded list, as sent."""
    requests: list[dict] = []

    def keep(params, **_):
        requests.append(copy.deepcopy(params))

    boto_session.events.register(event, keep)
    try:
        yield requests
    finally:
        boto_session.events.unregister(event, keep)


@contextmanager
def hold_back(boto_session, *, offline: bool, bucket: str) -> Iterator[None]:
    """Raise RequestHeldBack with the request instead of sending it; with ``offline``, send nothing at all."""

    def stop(params, **_):
        raise RequestHeldBack(copy.deepcopy(params))

    def answer(model, **_):
        if model.name == "ListBuckets":  # the SDK checks that its default bucket exists
            body = {"Buckets": [{"Name": bucket, "CreationDate": datetime.now(UTC)}]}
        else:
            body = {}
        return AWSResponse("https://dry-run.invalid", 200, {}, None), body

    saved_validate = os.environ.get("SAGEMAKER_VALIDATE_ROLE")
    quiet, sdk_logger = _NoFailureAdvice(), logging.getLogger("sagemaker")
    sdk_logger.addFilter(quiet)
    boto_session.events.register(CREATE_EVENT, stop)
    if offline:
        boto_session.events.register("before-call", answer)
        os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"  # the SDK's IAM policy simulation needs AWS
    try:
        yield
    finally:
        sdk_logger.removeFilter(quiet)
        boto_session.events.unregister(CREATE_EVENT, stop)
        if offline:
            boto_session.events.unregister("before-call", answer)
            if saved_validate is None:
                os.environ.pop("SAGEMAKER_VALIDATE_ROLE", None)
            else:
                os.environ["SAGEMAKER_VALIDATE_ROLE"] = saved_validate
