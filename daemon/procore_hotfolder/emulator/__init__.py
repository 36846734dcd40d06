"""A local stand-in for Procore, for tests, benchmarks and ``procore-hotfolder emulator/demo``.

It serves, on one ``http://127.0.0.1:PORT`` base URL, the OAuth token endpoint
(``/oauth/token``), the REST API used by procore-hotfolder (``/rest/...``: companies,
projects, v1.1 Uploads, project and company Documents folders/files/versions, images and
image categories, lists paginated as Procore pages them), an S3-like storage endpoint
(``/storage/<bucket>``: SigV4 form POSTs, presigned segment PUTs) and an admin API
(``GET /_emulator/state``, ``GET/POST /_emulator/faults``, and ``POST`` to
``/_emulator/projects``, ``/albums``, ``/folders``, ``/recycle_document``,
``/delete_folder`` to set up a company) for driving a separate emulator process.

Answers are shaped as Procore documents them; where Procore documents nothing, the module
that answers says so and takes the reading least convenient for a client.

    from procore_hotfolder.emulator import Emulator
    with Emulator() as emu:                      # or Emulator(...).start() / .stop()
        emu.faults.error_rate = 0.1              # any fault, at any time
        ...                                      # point the client at emu.url
        [record] = emu.stored_uploads()

The daemon never imports this package, and this package imports nothing else of the daemon.
"""

from .faults import Faults
from .records import RequestRecord, UploadRecord
from .server import Emulator, serve

__all__ = ["Emulator", "Faults", "RequestRecord", "UploadRecord", "serve"]
