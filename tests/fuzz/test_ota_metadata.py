# OTA metadata, the fw_*/sw_* shared attributes, fuzzed under CPython (firmware/updates.py and
# fetch.py run there too): any sequence of attribute notifications is followed without an
# exception; an update starts only when a package is assigned that differs from what runs and
# from the one being fetched, one at a time; problem() refuses every package whose fields a
# download could not use, with a reason.
import asyncio

from fuzzenv import fuzz
from hypothesis import example, given
from hypothesis import strategies as st

from firmware import fetch, updates
from firmware.board import Base

RUNNING = ["coapboard", "0.1.0"]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
    max_leaves=5,
)
good = {
    "title": st.sampled_from(["coapboard", "other"]),
    "version": st.sampled_from(["0.1.0", "0.2.0", ""]),
    "size": st.integers(-2, 2000000),
    "checksum": st.sampled_from(["ab" * 32, ""]),
    "checksum_algorithm": st.sampled_from(["SHA256", "CRC32", "SHA384"]),
}


@st.composite
def notification(draw, kind):
    n = {}
    for key, plausible in good.items():
        if draw(st.integers(0, 2)):
            n[kind + "_" + key] = draw(plausible | json_values)
    if draw(st.integers(0, 3)) == 0:
        keys = st.sampled_from([kind + "_" + k for k in good] + ["telemetry_interval"])
        n["deleted"] = draw(st.lists(keys | json_values, max_size=4) | json_values)
    if draw(st.booleans()):
        n["telemetry_interval"] = draw(json_values)
    return n


class Board(Base):
    root = "/nonexistent/coapboard-fuzz"  # no ota.json: nothing failed, nothing on trial


def follow(kind, notes):
    u = updates.Updates(kind, Board(), {"ota": {}}, RUNNING, None, ("ota_0", False))
    started = []

    async def fetch(pkg):  # stands in for the download: records what would be fetched
        started.append(pkg)
        await asyncio.sleep(3600)

    u._update = fetch

    async def run():
        for n in notes:
            u._on_attributes(n)
            await asyncio.sleep(0)
            yield u.target

    async def main():
        return [t async for t in run()]

    return asyncio.run(main()), started


@fuzz(60)
@given(
    st.sampled_from(["fw", "sw"]).flatmap(
        lambda k: st.tuples(st.just(k), st.lists(notification(k), min_size=1, max_size=6))
    )
)
@example(("fw", [{"fw_title": "coapboard", "fw_version": "0.2.0", "deleted": "fw_title"}]))
@example(("fw", [{"fw_title": 5, "fw_version": None}, {"deleted": [{"x": 1}, 3, None]}]))
def test_any_notifications_are_followed_without_an_exception(case):
    kind, notes = case
    targets, started = follow(kind, notes)
    for t in targets:
        if t is not None:
            assert t[:2] != RUNNING and len(t) == 5
    # a package starts exactly when the target changes to it: an unassignment (the target goes
    # to None) and the same assignment again start it again, a repeat of the target does not
    changes = [t for before, t in zip([None] + targets, targets) if t is not None and t != before]
    assert started == changes, (targets, started)
    for pkg in started:
        why = fetch.problem(pkg, kind)
        ok = (
            all(isinstance(x, str) and x for x in (pkg[0], pkg[1], pkg[3], pkg[4]))
            and type(pkg[2]) is int
            and pkg[2] >= 1
        )
        assert (why is None) == ok, (pkg, why)
        if why:
            assert kind + "_" in why or "checksum" in why


def test_unassignment_and_reassignment():
    a = {"fw_title": "coapboard", "fw_version": "0.2.0", "fw_size": 10, "fw_checksum": "ab"}
    a["fw_checksum_algorithm"] = "SHA256"
    gone = {"deleted": ["fw_" + k for k in good]}
    targets, started = follow("fw", [a, gone, dict(a, fw_version="0.1.0"), dict(a)])
    assert targets == [list(a.values()), None, None, list(a.values())]
    assert started == [list(a.values()), list(a.values())]
