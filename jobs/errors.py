"""Errors raised by the queue core.

ConveyorError
 ├── ConfigurationError        a setting is missing or wrong; the message says how to fix it
 ├── JobNotFound               no job with that id (for this owner)
 ├── InvalidTransition         an operation does not apply to the job's current state
 └── ParentFailed              a job to depend on ended dead or cancelled: it never succeeds

The API maps these to HTTP status codes in one place (api/errors.py).
"""

from __future__ import annotations


class ConveyorError(Exception):
    """Base of every error the queue core raises on purpose."""


class ConfigurationError(ConveyorError):
    """A setting is missing or has a value Conveyor cannot use."""


class JobNotFound(ConveyorError):
    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} does not exist")
        self.job_id = job_id


class InvalidTransition(ConveyorError):
    def __init__(self, job_id: int, state: str, action: str) -> None:
        super().__init__(f"cannot {action} job {job_id}: it is {state}")
        self.job_id = job_id
        self.state = state
        self.action = action


class ParentFailed(ConveyorError):
    def __init__(self, job_id: int, state: str) -> None:
        super().__init__(
            f"job {job_id} is {state}, so a job depending on it would never run: retry it"
            " first, or leave it out of depends_on"
        )
        self.job_id, self.state = job_id, state
