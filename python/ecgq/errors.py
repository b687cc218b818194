"""Errors as exceptions carrying the ecgq error code (docs/protocol.md section 6)."""


class EcgqError(Exception):
    """A job or call that failed: `code` (e.g. "missing_leads", "queue_full",
    "broker_unreachable"), `message`, the `field` it concerns and, for queue_full,
    `retry_after_ms`."""

    def __init__(self, code, message, field="", retry_after_ms=None, job_id=""):
        super().__init__(f"{code}: {message}" + (f" (field {field})" if field else ""))
        self.code = code
        self.message = message
        self.field = field
        self.retry_after_ms = retry_after_ms
        self.job_id = job_id
