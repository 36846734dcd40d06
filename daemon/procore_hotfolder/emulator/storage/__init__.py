"""The emulated S3: form POST with a SigV4 policy, and presigned segment (part) PUTs.

Bodies are streamed to a temporary file in ``data_dir`` while being hashed, then renamed into
place only when every check passed, so a refused or interrupted request never counts as stored.
Fault injection happens before a request gets here (see ``gates``).
"""

from __future__ import annotations

from ..state import EmulatorState
from ..wire import Reply, s3_error
from .form_post import post_object
from .part_put import put_part
from .request import StorageRequest, discard_body

__all__ = ["StorageRequest", "answer", "discard_body"]


def answer(state: EmulatorState, request: StorageRequest) -> Reply:
    """A form POST to ``/storage/<bucket>`` or a part PUT to ``/storage/<bucket>/<key>``;
    any other request is refused (405), its body discarded."""
    bucket, _, key = request.path.removeprefix("/storage/").partition("/")
    if request.method == "POST" and bucket and not key:
        return post_object(state, request)
    if request.method == "PUT" and bucket and key:
        return put_part(state, request)
    reply = s3_error(405, "MethodNotAllowed", "The specified method is not allowed.")
    return discard_body(request, reply)
