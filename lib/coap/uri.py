# uri.py: coap:// and coaps:// URIs to host, port and Uri-Path / Uri-Query options.

from .codec import URI_PATH, URI_QUERY


def uri_options(path, query=None):
    # "a/b/c", ["k=v", ...] or "k=v&x=y" -> [(URI_PATH, "a"), ..., (URI_QUERY, "k=v"), ...]
    # One option per segment and per parameter, as RFC 7252 and ThingsBoard require.
    opts = [(URI_PATH, unquote(s)) for s in path.split("/") if s]
    if query:
        if isinstance(query, str):
            query = query.split("&")
        opts += [(URI_QUERY, unquote(q)) for q in query if q]
    return opts


def unquote(s):
    if "%" not in s:
        return s
    out = bytearray()
    b = s.encode()
    i = 0
    while i < len(b):
        if b[i] == 37 and i + 2 < len(b):  # %XX
            out.append(int(b[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(b[i])
            i += 1
    return out.decode()


def parse_uri(uri):
    # -> (secure, host, port, options); raises ValueError naming what is wrong
    if uri.startswith("coap://"):
        secure, rest = False, uri[7:]
    elif uri.startswith("coaps://"):
        secure, rest = True, uri[8:]
    else:
        raise ValueError("URI must start with coap:// or coaps://: %s" % uri)
    rest, _, query = rest.partition("?")
    hostport, _, path = rest.partition("/")
    port = 5684 if secure else 5683
    if hostport.startswith("["):  # IPv6 literal
        host, _, tail = hostport[1:].partition("]")
        if tail.startswith(":"):
            port = int(tail[1:])
    elif ":" in hostport:
        host, _, p = hostport.partition(":")
        port = int(p)
    else:
        host = hostport
    if not host:
        raise ValueError("URI has no host: %s" % uri)
    return secure, host, port, uri_options(path, query)
