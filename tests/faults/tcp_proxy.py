"""A TCP proxy that a fault script can cut and restore (tests/faults/pg_outage.sh).

    python tcp_proxy.py LISTEN_PORT TARGET_HOST TARGET_PORT

Forwards every connection on 127.0.0.1:LISTEN_PORT to the target. SIGUSR1 cuts: the listener
is closed (new connections are refused) and every open connection is closed at once, in both
directions. SIGUSR2 restores: listening again on the same port. Each state change is written to
stdout as one line (`listening`, `cut N` with the number of connections closed, `restored`),
after it has taken effect, so the script can wait for it instead of sleeping.
"""

import asyncio
import signal
import sys


class Proxy:
    def __init__(self, port: int, host: str, target_port: int) -> None:
        self.port = port
        self.host = host
        self.target_port = target_port
        self.server: asyncio.base_events.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def listen(self) -> None:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", self.port, reuse_address=True)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.close()
            return
        self.writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers.discard(writer)
        self.writers.discard(up_writer)

    async def cut(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        closed = len(self.writers)
        for w in list(self.writers):
            # abort(): a RST, no lingering FIN handshake; the peer sees the connection die.
            w.transport.abort()
        self.writers.clear()
        print(f"cut {closed // 2}", flush=True)

    async def restore(self) -> None:
        if self.server is None:
            await self.listen()
        print("restored", flush=True)


async def main() -> None:
    port, host, target_port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    proxy = Proxy(port, host, target_port)
    await proxy.listen()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: asyncio.ensure_future(proxy.cut()))
    loop.add_signal_handler(signal.SIGUSR2, lambda: asyncio.ensure_future(proxy.restore()))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("listening", flush=True)
    await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
