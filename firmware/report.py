# report.py: an update's state reports, for a boot's start (trial.py) and an update (fetch.py),
# imported only while one of them runs.
import asyncio


async def report(u, state, error=None):
    # the kind's update state (None: only what runs) as telemetry, as ThingsBoard expects it
    p = u.kind + "_"
    title, version = u.current
    values = {"current_" + p + "title": title, "current_" + p + "version": version}
    if state:
        values[p + "state"] = state
    if error:
        values[p + "error"] = error
    if u.board.time_set():  # stamped like the telemetry (a protobuf schema needs it)
        # one report per ms at most: the server keeps one value per key and timestamp
        u._ts = max(u.board.now_ms(), u._ts + 1)
        values = {"ts": u._ts, "values": values}
    for _ in range(5):  # the update goes on even if a report cannot be sent
        try:
            await u.device.send_telemetry(values)  # one message ID for its exchange
            return
        except Exception as e:
            u.log.warning("state %s not reported:" % state, e)
            await asyncio.sleep_ms(2000)
