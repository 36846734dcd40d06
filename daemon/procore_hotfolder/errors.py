"""The exception tree of procore-hotfolder.

A leaf module: it imports nothing from the package. Every error knows whether retrying can
help (``retryable``), how long the server asked us to wait (``retry_after``, seconds) and,
for Procore errors, the HTTP status and the ``x-request-id`` support needs, whether the same
request may simply be sent again (``retry_request``, ``not_run``) and what the earlier tries
of that request met (``history``).
"""

from __future__ import annotations


class HotfolderError(Exception):
    """Base of every error the daemon raises on purpose."""

    retryable: bool = False
    reason: str = "error"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after

    def as_dict(self) -> dict[str, object]:
        """Fields for logs, error sidecars and the journal (never includes secrets)."""
        return {"reason": self.reason, "detail": self.message}


# --- configuration -------------------------------------------------------------------------


class ConfigError(HotfolderError):
    """The configuration is unusable; ``problems`` lists every problem, each naming its key."""

    reason = "configuration"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


# --- Procore and storage -------------------------------------------------------------------


class ProcoreError(HotfolderError):
    """An answer (or no answer) from Procore or its storage service."""

    reason = "procore_error"
    #: The request scope may send this same request again after a pause: it did not get
    #: through, or the server asked us to come back (network, 429, 503, other 5xx, 408).
    #: ``retryable`` is the whole file's scope: ``UploadExpired``, ``ContentMismatch`` and
    #: ``UnexpectedResponse`` are retryable there (a new Upload, a new read of the file),
    #: but sending the same request again cures none of them.
    retry_request: bool = False
    #: The request certainly did not run on the server (connection refused, 429): even a
    #: POST that must not run twice may be sent again.
    not_run: bool = False
    #: True when the error hits every request alike (network down, 429, 503): work pauses,
    #: the file's attempt counter is not charged.
    outage: bool = False
    #: Whose problem it is when it is nobody's file's: "account" (the service account's
    #: credentials: every folder waits) or "folder" (the folder's project or destination in
    #: Procore: that folder waits). Fixed in Procore, not by the file; None otherwise.
    pauses: str | None = None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        url: str | None = None,
        not_run: bool | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status
        self.code = code
        self.request_id = request_id
        self.url = url
        if not_run is not None:
            self.not_run = not_run
        #: Short descriptions of the earlier tries of the same request, oldest first, when
        #: the request scope gave up with this error (empty: it was the only try).
        self.history: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        """Fields for logs, error sidecars and the journal (never includes secrets); the
        ``history`` of earlier tries when the request's tries ran out."""
        out: dict[str, object] = {"reason": self.reason, "detail": self.message}
        if self.status is not None:
            out["status"] = self.status
        if self.code:
            out["code"] = self.code
        if self.request_id:
            out["request_id"] = self.request_id
        if self.history:
            out["history"] = list(self.history)
        return out


class NetworkError(ProcoreError):
    """No usable answer: connection refused or dropped, DNS failure, timeout."""

    reason = "network"
    retryable = True
    retry_request = True
    outage = True


class RateLimited(ProcoreError):
    """429: wait until the rate-limit window resets."""

    reason = "rate_limited"
    retryable = True
    retry_request = True
    outage = True
    not_run = True  # Procore refused it before running it


class ServiceUnavailable(ProcoreError):
    """503: heavy load or maintenance; honour Retry-After."""

    reason = "unavailable"
    retryable = True
    retry_request = True
    outage = True


class ServerError(ProcoreError):
    """500, 502, 504 and other 5xx: transient, retried with backoff."""

    reason = "server_error"
    retryable = True
    retry_request = True


class RequestTimeout(ProcoreError):
    """408: Procore gave up on the request (a large unfiltered request, a busy moment)."""

    reason = "request_timeout"
    retryable = True
    retry_request = True


class AuthenticationError(ProcoreError):
    """401 after a renewed token, or the token endpoint refused our credentials (a rotated
    secret): every folder waits until a token is granted again."""

    reason = "authentication"
    pauses = "account"


class PermissionDenied(ProcoreError):
    """403 from the API: the service account is not granted the project (Procore resets a
    service account's projects on every app update), the tool is disabled, the app is not
    connected to the company. Fixed in Procore: the folder waits."""

    reason = "permission"
    pauses = "folder"


class NotFound(ProcoreError):
    """404: the folder's project (or its Documents folder, album) is not there, or not
    visible to the service account: the folder waits."""

    reason = "not_found"
    pauses = "folder"


class Conflict(ProcoreError):
    """409 conflict."""

    reason = "conflict"


class ValidationFailed(ProcoreError):
    """400 or 422: the request was refused as invalid."""

    reason = "validation"


class NameClash(ValidationFailed):
    """The Documents folder already holds a file of that name and ``on_name_clash`` is
    ``fail``: permanent for this file (its message names the Procore folder and name)."""

    reason = "name_clash"
    retryable = False


class UploadExpired(ProcoreError):
    """The Upload (or its storage target) is no longer usable: create a new Upload."""

    reason = "upload_expired"
    retryable = True


class FilingUnconfirmed(HotfolderError):
    """Filing a stored Upload did not come to a confirmed end within one try: Procore's
    answers kept changing the plan (a clash, then the document to version gone, ...), or the
    filing was found not done again and again. Nothing expired: the next try plans afresh,
    at once the first time."""

    reason = "filing_unconfirmed"
    retryable = True


class StorageRejected(ProcoreError):
    """The storage service refused the bytes for a reason a new Upload will not fix."""

    reason = "storage_rejected"


class UnexpectedResponse(ProcoreError):
    """A success status whose body lacks what the API promises (e.g. no ``uuid``)."""

    reason = "unexpected_response"
    retryable = True


class ContentMismatch(ProcoreError):
    """Storage saw other bytes than were declared (SHA-256/digest mismatch, body cut short).

    The file probably changed while it was read, or the connection lost bytes: send again
    after checking the file (a new read, not a new Upload, is the cure).
    """

    reason = "content_mismatch"
    retryable = True


# --- routing -------------------------------------------------------------------------------


class RouteError(HotfolderError):
    """The file has no route: no rule of its folder matches it (and the folder has no
    destination of its own), or its rule names a project number that no project, or more
    than one, carries. A problem of the file's name or of the rules, not a pause: the file
    fails (to ``failed_dir`` with the reason), and ``retry`` routes it afresh, after the
    rules, the name or the projects were put right."""

    reason = "no_route"
    retryable = False


class NoRuleMatched(RouteError):
    """No rule of the folder matches the file, and the folder has no destination of its own
    for the files no rule matches. ``rules_tried`` is what the sidecar lists."""

    reason = "no_rule_matched"

    def __init__(self, message: str, *, relative: str,
                 rules_tried: list[dict[str, object]]) -> None:
        super().__init__(message)
        self.relative = relative
        self.rules_tried = rules_tried

    def as_dict(self) -> dict[str, object]:
        return {**super().as_dict(), "matched_against": self.relative,
                "rules_tried": self.rules_tried}


class UnknownProjectNumber(RouteError):
    """No project of the company, as List Projects shows it to this service account (active
    projects it has been granted), carries this exact project number."""

    reason = "unknown_project_number"

    def __init__(self, message: str, *, number: str) -> None:
        super().__init__(message)
        self.number = number

    def as_dict(self) -> dict[str, object]:
        return {**super().as_dict(), "project_number": self.number}


class AmbiguousProjectNumber(RouteError):
    """Several projects of the company carry this exact project number."""

    reason = "ambiguous_project_number"

    def __init__(self, message: str, *, number: str, project_ids: list[int]) -> None:
        super().__init__(message)
        self.number = number
        self.project_ids = project_ids

    def as_dict(self) -> dict[str, object]:
        return {**super().as_dict(), "project_number": self.number,
                "project_ids": self.project_ids}


class InvalidRoute(RouteError):
    """The rule that matched gives no usable value (e.g. its ``name`` template renders
    empty for this file)."""

    reason = "invalid_route"


# --- control -------------------------------------------------------------------------------


class Stopping(BaseException):
    """The daemon is stopping: the interrupted work is resumed at the next start.

    A ``BaseException``, like ``KeyboardInterrupt``: no ``except Exception`` (or
    ``except HotfolderError``) on the way up may take it for a file's trouble, charge an
    attempt for it or mark a file failed. Only ``uploader.Uploader.process`` catches it.
    """

    reason = "stopping"


# --- files ---------------------------------------------------------------------------------


class FileRefused(HotfolderError):
    """The file must not be uploaded: symlink, several hard links, not a regular file, ..."""

    reason = "refused"

    def __init__(self, message: str, *, reason: str = "refused") -> None:
        super().__init__(message)
        self.reason = reason


class FileUnreadable(HotfolderError):
    """The file cannot be read now (permission denied, I/O error): retried later."""

    reason = "unreadable"
    retryable = True


class FileChanged(HotfolderError):
    """The file changed (or vanished) after it settled: not archived, settles again."""

    reason = "changed"
    retryable = True


class FileVanished(FileChanged):
    """The file disappeared before it was uploaded."""

    reason = "vanished"


class FileOpenForWriting(FileChanged):
    """A writer holds the file open (it came back after the file settled): nothing of this
    version is filed or moved; the file settles again once the writer lets go."""

    reason = "open_for_writing"


class ArchiveError(HotfolderError):
    """The original could not be moved (disk full, permission): kept in place, retried."""

    reason = "archive"
    retryable = True


class JournalError(HotfolderError):
    """The journal refused a state transition (a bug or a concurrent change)."""

    reason = "journal"


# --- telling a person ----------------------------------------------------------------------


class AlertDeliveryFailed(HotfolderError):
    """An alert did not reach its channel (webhook, SMTP server, command). ``retryable``:
    trying the same message later may help (no answer, a 5xx or 4xx SMTP reply, a command
    that failed); not for an answer that will not change (a 404 webhook, a refused login or
    recipient, a certificate that does not verify, a command that does not exist). The
    message never holds a webhook URL's path or a password."""

    reason = "alert_delivery"

    def __init__(self, message: str, *, retryable: bool,
                 retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retryable = retryable
