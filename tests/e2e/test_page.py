# tbsim's page in a real browser: Debian's chromium, headless, driven by Playwright, against
# tbsim in this process and the real firmware on the unix port. What the page does is judged
# by what the device did (pins.json, its log) and what tbsim stored; what it shows, by
# Playwright's expect with a deadline. Screenshots go to build/artefacts/page/.
import re

import pytest

from tests.device.otaimage import image
from tests.e2e.conftest import REPO, SEQ, until
from tests.e2e.test_updates import OLD, app_bundle, current, ota_config, states

playwright = pytest.importorskip("playwright.sync_api")
expect = playwright.expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTEFACTS = REPO / "build" / "artefacts" / "page"


def chromium(p, profile, height):
    # Debian's chromium, headless, with a profile folder of its own (p: sync_playwright's)
    return p.chromium.launch_persistent_context(
        str(profile),
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1400, "height": height},
    )


WAIT = 20000  # ms: the longest a page waits for the device (a boot, an RPC)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    # one chromium for the module, with a fresh profile folder
    with playwright.sync_playwright() as p:
        ctx = chromium(p, tmp_path_factory.mktemp("chromium-profile"), 1100)
        yield ctx
        ctx.close()


@pytest.fixture
def open_page(browser, sim, request):
    """open_page(device_id=None): tbsim's page, live, with that device selected; a screenshot
    of it is kept at teardown, and the page's JavaScript errors fail the test."""
    pages, errors = [], []

    def open_(device_id=None):
        page = browser.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.set_default_timeout(WAIT)
        url = "http://127.0.0.1:%d/" % sim.http_port
        page.goto(url + ("#" + device_id if device_id else ""))
        expect(page.locator("body")).to_have_attribute("data-live", "1")
        pages.append(page)
        return page

    yield open_
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    for i, page in enumerate(pages):
        name = request.node.name + ("-%d" % i if i else "")
        page.screenshot(
            path=str(ARTEFACTS / (re.sub(r"[^\w-]", "_", name) + ".png")), full_page=True
        )
        page.close()
    assert not errors, errors


@pytest.fixture
def running(sim, dev, device_root, firmware):
    # the firmware, its boot attributes in (so it answers RPCs from now on)
    fw = firmware(device_root, ota_config(sim))
    until(lambda: current(sim, dev["id"]) == OLD, what="boot report")
    fw.wait_line("reporting to")
    return fw


def test_gpio_switch_drives_the_simulated_pin(sim, dev, running, open_page):
    page = open_page(dev["id"])
    pump = page.locator('#gpio input[data-pin="26"]')
    door = page.locator('#gpio input[data-pin="35"]')
    expect(pump).not_to_be_checked()  # getGpioStatus answered: the switches are drawn
    pump.click()
    until(lambda: running.pins().get("26") == 1, what="pin 26 high")
    expect(pump).to_be_checked()
    expect(page.locator("#gpio-result")).to_have_text("GPIO 26 on")
    # the pin change came back as the device's client attribute
    expect(page.locator('#attr-client tr[data-key="gpio_pump"] .value')).to_have_text("1")
    pump.click()
    until(lambda: running.pins().get("26") == 0, what="pin 26 low")
    expect(pump).not_to_be_checked()
    # an input refuses: the switch goes back and the device's error is shown
    door.click()
    expect(page.locator("#gpio-result")).to_have_text("GPIO 35: pin 35 is an input")
    expect(door).not_to_be_checked()
    assert "35" not in running.pins()


def test_a_shared_attribute_edited_on_the_page_reaches_the_device(sim, dev, running, open_page):
    page = open_page(dev["id"])
    at = running.mark()
    page.fill("#shared-key", "telemetry_interval")
    page.fill("#shared-value", "2")
    page.click("#shared-add")
    running.wait_line("telemetry interval now 2 s", after=at)
    field = page.locator('#attr-shared input[data-key="telemetry_interval"]')
    expect(field).to_have_value("2")
    at = running.mark()
    field.fill("3")
    page.click('#attr-shared tr[data-key="telemetry_interval"] button.save')
    running.wait_line("telemetry interval now 3 s", after=at)
    assert sim.attributes(dev["id"], "SHARED_SCOPE") == {"telemetry_interval": 3}
    # a bad value: the device says so in its log and keeps running on 3 s
    at = running.mark()
    field.fill('"soon"')
    page.click('#attr-shared tr[data-key="telemetry_interval"] button.save')
    running.wait_line("shared attribute telemetry_interval:", after=at)
    assert running.running()


def upload(page, kind, title, version, data):
    # the page's form: a package uploaded and assigned to the chosen device
    page.select_option("#pkg-type", kind)
    page.fill("#pkg-title", title)
    page.fill("#pkg-version", version)
    file = {"name": "package.bin", "mimeType": "application/octet-stream", "buffer": data}
    page.set_input_files("#pkg-file", files=[file])
    page.click("#pkg-upload")
    done = "%s %s: %d bytes uploaded, assigned" % (title, version, len(data))
    expect(page.locator("#pkg-result")).to_have_text(done)


def test_a_package_uploaded_and_assigned_on_the_page_is_followed_to_updated(
    sim, dev, running, open_page
):
    did = dev["id"]
    page = open_page(did)
    img = image(60000)
    upload(page, "FIRMWARE", "coapboard", "0.2.0", img)
    expect(page.locator("#fw-state")).to_have_text("UPDATED", timeout=60000)
    expect(page.locator("#fw-current")).to_have_text("coapboard 0.2.0")
    want = ["DOWNLOADING", "DOWNLOADED", "VERIFIED", "UPDATING", "UPDATED"]
    assert states(sim, did) == want
    # the page followed every state as it came
    trail = page.locator("#fw-update .trail li").all_inner_texts()
    assert [s for s in trail if s in want] == want
    assert current(sim, did) == ["coapboard", "0.2.0"]
    pkg = sim.call(sim.store.device, did)["firmware_id"]
    assert sim.call(sim.store.ota, pkg, True)["data"] == img


def test_a_refused_package_shows_failed_and_the_device_error(sim, dev, running, open_page):
    page = open_page(dev["id"])
    upload(page, "FIRMWARE", "coapboard", "0.3.0", b"\x00" + image(8000)[1:])
    expect(page.locator("#fw-state")).to_have_text("FAILED")
    expect(page.locator("#fw-error")).to_contain_text("not the ESP32 app-image magic")
    assert states(sim, dev["id"])[-1][0] == "FAILED"
    assert current(sim, dev["id"]) == OLD


def test_a_software_bundle_from_the_page_is_followed_to_updated(sim, dev, running, open_page):
    page = open_page(dev["id"])
    upload(page, "SOFTWARE", "coapboard-app", "0.2.0", app_bundle())
    expect(page.locator("#sw-state")).to_have_text("UPDATED", timeout=60000)
    expect(page.locator("#sw-current")).to_have_text("coapboard-app 0.2.0")
    assert current(sim, dev["id"], "sw") == ["coapboard-app", "0.2.0"]


def test_the_chart_gets_the_new_points(sim, dev, running, open_page):
    page = open_page(dev["id"])
    expect(page.locator('#devices tr[data-name="e2e-device"]')).to_have_attribute(
        "data-online", "1"
    )
    chart = page.locator('.chart[data-key="%s"]' % SEQ)
    expect(chart.locator("canvas")).to_have_count(1)  # drawn by uPlot
    expect(chart).to_have_attribute("data-points", re.compile(r"[1-9]"))
    n = int(chart.get_attribute("data-points"))
    cell = page.locator('#latest tr[data-key="%s"] .value' % SEQ)
    seen = int(cell.inner_text())
    page.wait_for_function(
        "([key, n]) => Number(document.querySelector(`.chart[data-key=${key}]`)"
        ".dataset.points) >= n + 3",
        arg=[SEQ, n],
    )
    expect(cell).not_to_have_text(str(seen))
    # the chart holds the counter's readings in order, none missing, none from the future
    got = page.evaluate("(key) => S.series.get(key).y", SEQ)
    assert got == list(range(got[0], got[0] + len(got)))
    assert got[-1] <= sim.telemetry(dev["id"], [SEQ])[SEQ][0]["value"]


def test_rpc_console_shows_the_reply_or_the_timeout(sim, dev, running, open_page):
    page = open_page(dev["id"])
    page.fill("#rpc-method", "getGpio")
    page.fill("#rpc-params", '{"pin": 26}')
    page.click("#rpc-send")
    result = page.locator("#rpc-result")
    expect(result).to_have_attribute("data-state", "reply")
    expect(result).to_contain_text('"value": 0')
    page.fill("#rpc-params", "{pin")
    page.click("#rpc-send")
    expect(result).to_have_attribute("data-state", "error")
    expect(result).to_contain_text("params are not JSON")
    # a device that never connects: the RPC times out
    quiet = sim.create_device("quiet-device")
    page.click('#devices tr[data-name="quiet-device"]')
    expect(page.locator("#d-name")).to_have_text("quiet-device")
    expect(page.locator("#d-activity")).to_contain_text("offline")
    page.fill("#rpc-method", "getGpio")
    page.fill("#rpc-params", "")
    page.fill("#rpc-timeout", "300")
    page.click("#rpc-send")
    expect(result).to_have_attribute("data-state", "timeout")
    rpcs = sim.call(sim.store.rpcs, quiet["id"])
    assert [(r["method"], r["status"]) for r in rpcs if r["method"] == "getGpio"] == [
        ("getGpio", "TIMEOUT")
    ]


def test_devices_profiles_and_fault_knobs(sim, open_page):
    sim.live.inactivity_timeout = 1.0  # what the page is told when it connects
    page = open_page()
    page.fill("#new-device-name", "bench-1")
    page.fill("#new-device-token", "PAGE_TOKEN_1")
    page.click("#new-device-create")
    expect(page.locator("#new-device-result")).to_have_text("bench-1: token PAGE_TOKEN_1")
    row = page.locator('#devices tr[data-name="bench-1"]')
    expect(row).to_have_count(1)
    expect(page.locator("#d-token")).to_have_text("PAGE_TOKEN_1")
    dev = sim.call(sim.store.device_by_token, "PAGE_TOKEN_1")
    assert dev["name"] == "bench-1"
    # it talks once (its last activity), then is quiet longer than the inactivity timeout
    expect(row.locator(".ago")).to_have_text("never")
    sim.call(sim.core.touch, dev["id"])
    expect(row.locator(".ago")).to_have_text(re.compile(r"\d+ s ago"))
    expect(row).to_have_attribute("data-online", "0")
    expect(page.locator("#d-activity")).to_contain_text("offline")
    page.fill("#profile-name", "field")
    page.fill("#profile-key", "FIELD_KEY")
    page.fill("#profile-secret", "FIELD_SECRET")
    page.click("#profile-create")
    expect(page.locator("#new-profile-result")).to_contain_text('"key": "FIELD_KEY"')
    expect(page.locator("#profiles tbody tr")).to_have_count(2)
    profile = sim.call(sim.store.profile_by_key, "FIELD_KEY")
    assert (profile["provision_secret"], profile["provision_type"]) == (
        "FIELD_SECRET",
        "ALLOW_CREATE_NEW_DEVICES",
    )
    # the knobs set tbsim's faults; a change made elsewhere shows on the page
    page.fill("#fault-loss-in", "0.25")
    page.press("#fault-loss-in", "Enter")
    until(lambda: sim.faults.snapshot()["in"]["loss"] == 0.25, what="loss in 0.25")
    page.check("#fault-outage")
    until(lambda: sim.faults.snapshot()["outage"], what="outage on")
    expect(page.locator("body")).to_have_class(re.compile("outage"))
    sim.call(sim.faults.configure, {"outage": False, "out": {"delay": 0.5}})
    expect(page.locator("#fault-outage")).not_to_be_checked()
    expect(page.locator("#fault-delay-out")).to_have_value("0.5")
    page.click("#fault-drop")
    expect(page.locator("#fault-drop")).to_have_attribute("title", re.compile(r"\(1 so far\)"))
    assert sim.faults.snapshot()["observe_drops"] == 1
    page.fill("#fault-loss-out", "2")  # out of range: tbsim refuses and says why
    page.press("#fault-loss-out", "Enter")
    expect(page.locator("#fault-counters")).to_contain_text("loss out of range")
    assert sim.faults.snapshot()["out"]["loss"] == 0
