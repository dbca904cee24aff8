#!/usr/bin/env python3
"""TLS in front of a plain HTTP server, ending every connection with a TLS close_notify."""
import asyncio, ssl, sys

listen_port, upstream_port, cert, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)

async def pipe(r, w):
    try:
        while True:
            data = await r.read(1 << 18)
            if not data:
                break
            w.write(data)
            await w.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        try:
            w.close()
            await w.wait_closed()
        except Exception:
            pass

async def handle(cr, cw):
    try:
        ur, uw = await asyncio.open_connection("127.0.0.1", upstream_port)
    except OSError:
        cw.close()
        return
    await asyncio.gather(pipe(cr, uw), pipe(ur, cw))

async def main():
    srv = await asyncio.start_server(handle, "127.0.0.1", listen_port, ssl=ctx)
    async with srv:
        await srv.serve_forever()

asyncio.run(main())
