# python -m tools.tbsim: run tbsim in the foreground until Ctrl-C.
import argparse
import asyncio
import signal

from .faults import KNOBS
from .ratelimit import RateLimitError, parse
from .server import TbSim


def _limit(text):
    # a rate limit as ThingsBoard writes it, checked here so a bad one is a usage error
    try:
        parse(text)
    except RateLimitError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m tools.tbsim", description="Local ThingsBoard-compatible CoAP server"
    )
    ap.add_argument("--coap-port", type=int, default=5683, help="UDP port (0: any free port)")
    ap.add_argument("--http-port", type=int, default=8080, help="admin API port (0: any)")
    ap.add_argument("--host", default="0.0.0.0", help="CoAP bind address (default 0.0.0.0)")
    ap.add_argument("--http-host", default="127.0.0.1", help="admin API bind address")
    ap.add_argument("--data", default="tbsim-data", help="folder for tbsim.db (created)")
    ap.add_argument(
        "--piggyback",
        action="store_true",
        help="answer in the ACK when possible, unlike ThingsBoard (for comparison)",
    )
    ap.add_argument("--piggyback-timeout", type=float, default=0.5, help="s before empty ACK")
    ap.add_argument("--ack-timeout", type=float, default=2.0, help="CoAP ACK_TIMEOUT, s")
    ap.add_argument("--ack-random", type=float, default=1.5, help="CoAP ACK_RANDOM_FACTOR")
    ap.add_argument("--max-retransmit", type=int, default=4, help="CoAP MAX_RETRANSMIT")
    ap.add_argument("--exchange-lifetime", type=float, default=247.0, help="dedup lifetime, s")
    ap.add_argument("--sync-timeout", type=float, default=10.0, help="client RPC timeout, s")
    ap.add_argument(
        "--inactivity-timeout",
        type=float,
        default=60.0,
        help="s without a request before the page shows a device offline",
    )
    ap.add_argument("--fault-seed", type=int, default=0, help="seed of every fault knob")
    for knob in KNOBS:
        unit = "s" if knob in ("delay", "jitter") else "probability"
        for d, who in (("in", "device to server"), ("out", "server to device")):
            ap.add_argument(
                "--%s-%s" % (knob, d), type=float, default=0.0, help="%s, %s" % (unit, who)
            )
    ap.add_argument(
        "--drop-observes-every",
        type=float,
        default=0.0,
        help="s between dropping every observe relation, as a server restart would (0: never)",
    )
    for who in ("device", "tenant"):
        ap.add_argument(
            "--rate-limit-%s" % who,
            default="",
            type=_limit,
            metavar="N:S,...",
            help="ThingsBoard's transport.rate_limits.%s: at most N messages per S seconds "
            "(e.g. 10:1,300:60), else 5.00; default none" % who,
        )
    ap.add_argument("--quiet", action="store_true", help="no console line per event")
    return ap.parse_args(argv)


async def main(args):
    faults = {d: {k: getattr(args, "%s_%s" % (k, d)) for k in KNOBS} for d in ("in", "out")}
    sim = TbSim(
        args.data,
        coap_port=args.coap_port,
        http_port=args.http_port,
        host=args.host,
        http_host=args.http_host,
        piggyback=args.piggyback,
        piggyback_timeout=args.piggyback_timeout,
        ack_timeout=args.ack_timeout,
        ack_random=args.ack_random,
        max_retransmit=args.max_retransmit,
        exchange_lifetime=args.exchange_lifetime,
        sync_timeout=args.sync_timeout,
        faults=faults,
        fault_seed=args.fault_seed,
        drop_observes_every=args.drop_observes_every,
        inactivity_timeout=args.inactivity_timeout,
        rate_limits={"device": args.rate_limit_device, "tenant": args.rate_limit_tenant},
        log=not args.quiet,
    )
    await sim.astart()
    if args.quiet:
        print("tbsim ready coap=%d http=%d" % (sim.coap_port, sim.http_port), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await sim.astop()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
