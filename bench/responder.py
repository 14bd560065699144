# responder.py: a minimal CoAP responder for benchmarks (CPython): answers every CON request
# with a piggybacked 2.01 (or, with --separate, ThingsBoard's separate CON 2.01 without ACK).
import argparse
import socket


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--separate", action="store_true")
    a = ap.parse_args()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", a.port))
    print(s.getsockname()[1], flush=True)
    mid = 0
    while True:
        d, addr = s.recvfrom(2048)
        if len(d) < 4 or d[0] >> 4 != 4 or d[1] == 0:  # only CON requests
            continue
        tkl = d[0] & 15
        if a.separate:
            mid = (mid + 1) & 0xFFFF
            s.sendto(bytes([0x40 | tkl, 65, mid >> 8, mid & 255]) + d[4 : 4 + tkl], addr)
        else:
            s.sendto(bytes([0x60 | tkl, 65]) + d[2 : 4 + tkl], addr)


if __name__ == "__main__":
    main()
