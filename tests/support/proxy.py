"""A TCP proxy between Siyu and PostgreSQL that can black-hole the connection, as a network
partition or a database host losing power does: packets go nowhere, and nothing tells
either end (no RST, no FIN)."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from sqlalchemy.engine import make_url


class _Link:
    def __init__(self, lost: bool):
        self.lost = lost
        self.writers: list[asyncio.StreamWriter] = []


class BlackHoleProxy:
    """Forwards 127.0.0.1:`port` to `upstream`. `black_hole()`: from then on every byte either
    way is read and dropped, and every socket stays open; connections made meanwhile are
    accepted and go nowhere. `resume()`: new connections are forwarded again; those of before
    stay silent for good, as a host that lost power forgets them."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.dark = False
        self.port = 0
        self._links: list[_Link] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def url(self, database_url: str) -> str:
        """`database_url` with its host and port this proxy's."""
        return (
            make_url(database_url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)
        )

    def black_hole(self) -> None:
        self.dark = True
        for link in self._links:
            link.lost = True

    def resume(self) -> None:
        self.dark = False

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(lost=self.dark)
        link.writers.append(writer)
        self._links.append(link)
        if link.lost:
            await self._pump(reader, None, link)
            return
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        link.writers.append(up_writer)
        await asyncio.gather(self._pump(reader, up_writer, link), self._pump(up_reader, writer, link))

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, to: asyncio.StreamWriter | None, link: _Link) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if link.lost or to is None:
                    continue  # into the black hole
                to.write(data)
                await to.drain()
        if not link.lost:  # an end closed while the network was there: the other end sees it
            for writer in link.writers:
                writer.close()

    async def _stop(self) -> None:
        self._server.close()
        for link in self._links:
            for writer in link.writers:
                writer.close()
        pumps = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)

    def __enter__(self) -> BlackHoleProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc) -> None:
        # closing the sockets lets whatever still hangs on them (before the fix) end
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
