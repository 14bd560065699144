# power.py: ThingsBoard's CoAP power saving (PSM, DRX, eDRX) for tbsim. A device may take
# downlinks for a while after each uplink (any authenticated request, or the ACK of a CON
# notification); outside that window RPCs wait in the core and shared-attribute updates are
# merged into one notification, sent when the device next wakes. Sleep is judged from the
# clock at each uplink rather than by a timer, so tests can drive it with a fake clock.
from .store import now_ms

MODES = ("PSM", "DRX", "E_DRX")
FIELDS = ("psmActivityTimer", "edrxCycle", "pagingTransmissionWindow")
DEFAULT_MS = 10000  # transport.coap.psm_activity_timer and paging_transmission_window


def check(conf):
    # a clientSettings or a device's COAP transportConfiguration -> error text, or None
    mode = conf.get("powerMode")
    if mode is not None and mode not in MODES:
        return "powerMode must be one of %s" % ", ".join(MODES)
    for key in FIELDS:
        value = conf.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            return "%s must be a number of milliseconds" % key
    return None


def settings(device_conf, profile_transport):
    # -> (mode, psm ms, window ms). The device's own powerMode wins, with its own timers;
    # without one, the profile's clientSettings fill in whatever the device leaves unset.
    dev = device_conf if (device_conf or {}).get("type") == "COAP" else {}
    prof = {}
    if dev.get("powerMode") is None and (profile_transport or {}).get("type") == "COAP":
        prof = profile_transport.get("clientSettings") or {}
    mode = dev.get("powerMode") or prof.get("powerMode")

    def timer(key):
        value = dev.get(key)
        if value is None:
            value = prof.get(key)
        return value or DEFAULT_MS  # unset or 0 falls back to the transport's default

    return mode, timer("psmActivityTimer"), timer("pagingTransmissionWindow")


def merge(queued, values, deleted):
    # TbCoapClientState.addQueuedNotification: later values win, the new deletes remove keys;
    # the deletes of the earlier queued update are dropped, as ThingsBoard drops them
    if queued is None:
        return dict(values), list(deleted)
    merged = dict(queued[0])
    merged.update(values)
    for key in deleted:
        merged.pop(key, None)
    return merged, list(deleted)


class _State:
    def __init__(self):
        self.last_uplink = None  # ms; None until the device first talks
        self.extra = True  # eDRX: the one downlink allowed outside the window, per uplink
        self.missed = None  # (values, deleted) queued while asleep


class PowerSaving:
    def __init__(self, config, clock=now_ms):
        self.config = config  # device id -> (mode, psm ms, window ms)
        self.clock = clock
        self.states = {}

    def _state(self, did):
        return self.states.setdefault(did, _State())

    def _awake_for(self, mode, psm, window):
        return psm if mode == "PSM" else window

    def uplink(self, did):
        # -> True when this uplink wakes a sleeping device
        mode, psm, window = self.config(did)
        st = self._state(did)
        now = self.clock()
        was = st.last_uplink
        st.last_uplink = max(now, was or 0)
        st.extra = True
        if mode not in ("PSM", "E_DRX") or was is None:
            return False
        return now - was > self._awake_for(mode, psm, window)

    def allowed(self, did):
        # may a downlink go out now? eDRX spends its one extra downlink here
        mode, psm, window = self.config(did)
        if mode not in ("PSM", "E_DRX"):
            return True
        st = self._state(did)
        since = self.clock() - (st.last_uplink or 0)
        if since <= self._awake_for(mode, psm, window):
            return True
        if mode == "E_DRX" and st.extra:
            st.extra = False
            return True
        return False

    def ack_wait_ms(self, did):
        # how long an RPC notification may wait for its ACK before it counts as TIMEOUT
        mode, psm, window = self.config(did)
        return psm if mode == "PSM" else window

    def queue(self, did, values=(), deleted=()):
        st = self._state(did)
        st.missed = merge(st.missed, dict(values), list(deleted))

    def take_missed(self, did):
        st = self._state(did)
        missed, st.missed = st.missed, None
        return missed

    def mode(self, did):
        return self.config(did)[0]

    def forget(self, did):
        self.states.pop(did, None)
