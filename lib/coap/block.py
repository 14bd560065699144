# block.py: RFC 7959 block-wise transfers over one reusable Exchange. Block2 downloads go to
# a sink block by block (never held whole in RAM); Block1 uploads split a large payload.

from .client import ResponseError
from .codec import GET
from .codes import BLOCK1, BLOCK2, CONTINUE, ETAG, REQUEST_ENTITY_TOO_LARGE, SIZE1


def szx(size):
    # block size 16..1024 (a power of two) -> SZX exponent 0..6
    for e in range(7):
        if 16 << e == size:
            return e
    raise ValueError("block size must be a power of two from 16 to 1024: %r" % size)


def _text(payload):
    # a diagnostic payload for the error message; it is the server's, so maybe not UTF-8
    try:
        return bytes(payload).decode()
    except UnicodeError:
        return "<%d bytes>" % len(payload)


def _with(options, num, value):
    # options plus a mutable [num, value] entry in number order (repeated options keep order)
    opts = [o for o in options if o[0] != num]
    i = 0
    while i < len(opts) and opts[i][0] <= num:
        i += 1
    entry = [num, value]
    opts.insert(i, entry)
    return opts, entry


async def download(client, options, sink, size=1024, ex=None, code=GET, timeout=None, token=None):
    # GET a resource of any size into sink (a callable or an object with write()), taking
    # each block as it comes; the server may lower the block size. Returns the byte count.
    # token: use this token for every block instead of random ones.
    # Raises ResponseError on an error code, ValueError if blocks or the ETag do not line up.
    write = sink.write if hasattr(sink, "write") else sink
    ex = ex or client.exchange()
    exp = szx(size)
    opts, entry = _with(options, BLOCK2, 0)
    total = 0
    num = 0
    etag = None
    while True:
        entry[1] = num << 4 | exp
        await ex.request(code, opts, timeout=timeout, token=token)
        if ex.code >> 5 != 2:
            raise ResponseError(ex.code, _text(ex.payload()))
        b = ex.uint(BLOCK2)
        data = ex.payload()
        if b is None:  # the whole representation in one response
            write(data)
            return total + len(data)
        bexp = b & 7
        if (b >> 4) << (bexp + 4) != total or bexp > exp:
            raise ValueError("block %d of size %d at offset %d" % (b >> 4, 16 << bexp, total))
        tag = ex.option(ETAG)
        if num and tag != etag:
            raise ValueError("resource changed during the transfer (ETag)")
        etag = tag
        exp = bexp
        write(data)
        total += len(data)
        if not b & 8:
            return total
        num = total >> (exp + 4)


async def upload(client, code, options, payload, size=1024, ex=None, timeout=None, token=None):
    # Send payload with Block1 when it exceeds one block; the server may ask for smaller
    # blocks (in a 2.31 or a 4.13). Returns the exchange holding the final response.
    ex = ex or client.exchange()
    total = len(payload)
    if total <= size:
        return await ex.request(code, options, payload, timeout=timeout, token=token)
    exp = szx(size)
    data = memoryview(payload)
    opts, entry = _with(options, BLOCK1, 0)
    opts, _ = _with(opts, SIZE1, total)
    off = 0
    while True:
        end = min(off + (16 << exp), total)
        more = end < total
        entry[1] = (off >> (exp + 4)) << 4 | more << 3 | exp
        await ex.request(code, opts, data[off:end], timeout=timeout, token=token)
        b = ex.uint(BLOCK1)
        if ex.code == REQUEST_ENTITY_TOO_LARGE and b is not None and (b & 7) < exp and not off:
            exp = b & 7  # server wants smaller blocks: start again with them
            continue
        if not more or ex.code != CONTINUE:
            return ex
        if b is not None and (b & 7) < exp:
            exp = b & 7
        off = end
