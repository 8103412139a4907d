"""The real API served by uvicorn on 127.0.0.1, port 0, in a thread of the test process."""

from __future__ import annotations

import threading
from types import TracebackType

import uvicorn
from tests.support.uvicorn_thread import ThreadServer
from tests.support.waiting import wait_until

from sealmail.app import Services
from sealmail.intake.api.app import create_api


class ApiServer:
    def __init__(self, services: Services) -> None:
        config = uvicorn.Config(
            create_api(services), host="127.0.0.1", port=0, log_level="warning", lifespan="off"
        )
        self.server = ThreadServer(config)
        self.thread = threading.Thread(target=self.server.run, name="api-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> ApiServer:
        self.thread.start()
        wait_until(lambda: self.server.started or not self.thread.is_alive(), 10, "uvicorn did not start")
        assert self.server.started, "uvicorn exited during startup"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.stop()
        self.thread.join(10)
