"""The emulated REST API: companies, Uploads (v1.1), Documents folders/files/versions, images.

Authentication, rate limiting, the company header and fault injection happen before these
handlers run (see ``gates``); each handler gets a parsed ``ApiRequest`` and returns a
``Reply`` or raises ``ApiError``.
"""

from .request import ApiRequest
from .routes import route

__all__ = ["ApiRequest", "route"]
