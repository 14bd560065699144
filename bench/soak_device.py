# soak_device.py (MicroPython): what the board runs during `make soak` (tools/soak.py passes it
# to tools.simdevice as --main). The firmware unchanged (firmware.app.main), plus one line with
# the heap after a collection every 10 s, so the soak can report heap at start and end.
import asyncio
import gc

from firmware import app
from firmware import board as boards


async def heap():
    while True:
        gc.collect()
        print("soak: heap", gc.mem_alloc(), gc.mem_free())
        await asyncio.sleep_ms(10000)


async def main():
    asyncio.create_task(heap())
    await app.main(boards.get())


asyncio.run(main())
