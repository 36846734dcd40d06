"""Helpers shared by the emulator tests: ids, waiting, a tiny Procore client."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import requests
from requests_toolbelt import MultipartEncoder

from procore_hotfolder.emulator import Emulator

COMPANY = 4_000_000_004  # > 32 bits on purpose
PROJECT = 5_000_000_123
MIB = 1 << 20


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


class Client:
    """A tiny Procore client for the tests: token, JSON calls, storage POST and PUT."""

    def __init__(self, emu: Emulator, company: int = COMPANY) -> None:
        self.emu = emu
        self.company = company
        self.http = requests.Session()
        self.token = self.new_token()

    def new_token(self) -> str:
        response = self.http.post(
            self.emu.url + "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "emulator-client",
                "client_secret": "emulator-secret",
            },
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Procore-Company-Id": str(self.company),
            **kwargs.pop("headers", {}),
        }
        return self.http.request(method, self.emu.url + path, headers=headers, **kwargs)

    def create_upload(self, project: int | None = PROJECT, **body: Any) -> dict[str, Any]:
        body.setdefault("response_filename", "scan.pdf")
        scope = f"projects/{project}" if project else f"companies/{self.company}"
        response = self.call("POST", f"/rest/v1.1/{scope}/uploads", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def store(
        self,
        upload: dict[str, Any],
        data: bytes,
        fields: list[tuple[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        if fields is None:
            fields = [*upload["fields"].items(), ("file", ("scan.pdf", io.BytesIO(data), "x/y"))]
        encoder = MultipartEncoder(fields=fields)
        return self.http.post(  # one keep-alive connection across refusals and successes
            upload["url"],
            data=encoder,
            headers={"Content-Type": encoder.content_type, **(headers or {})},
        )

    def upload_file(self, data: bytes, project: int | None = PROJECT) -> str:
        upload = self.create_upload(project, size=len(data))
        response = self.store(upload, data)
        assert response.status_code in (200, 201, 204), response.text
        return str(upload["uuid"])


def s3_code(response: requests.Response) -> str:
    assert response.headers["Content-Type"] == "application/xml"
    return response.text.split("<Code>")[1].split("</Code>")[0]
