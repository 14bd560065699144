# mutants.py: does the suite notice when behaviour that matters changes? Each mutant below is
# a one-line change to the firmware, lib/ or tbsim with the deterministic tests that must catch
# it. `make mutants` applies them one at a time to a copy of the repository and runs those
# tests: a mutant whose tests still pass survived. A listed line that is no longer in its file
# (or is there twice) stops the run before anything else, so the list cannot rot silently.
#
#   .venv/bin/python tests/mutants.py [-j JOBS] [NAME ...]    (names: run only those)
#
# Exit status: 0 when every mutant was caught, 1 when one survived, hung its tests or they could
# not run (a renamed test is "not found"), 2 when the list no longer matches the code.
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ("tests/fuzz/", "tests/codec/test_fuzz.py")  # chance is not a catch
TIMEOUT = 300  # s for one mutant's tests: a mutant must make them fail, not hang

# name; path of the file; old: the exact text to change, in the file once (a line or part of
# one, with a neighbouring line where it alone is not unique); new: what it becomes; tests:
# pytest node ids, narrow and never fuzz tests, that fail on the mutant and pass without it.
Mutant = namedtuple("Mutant", "name path old new tests")

CLIENT = "tests/device/mp_client.py::"
TBDEV = "tests/device/mp_tbdevice.py::"
CODEC = "tests/codec/"
OTA = "tests/device/mp_ota.py::"
SPOOL = "tests/device/mp_spool.py::"
CONFIG = "tests/test_config.py::"
UPD = "tests/e2e/test_updates.py::"
TBSIM = "tests/tbsim/"

MUTANTS = [
    # --- the CoAP client: duplicates, backoff, Observe freshness, tokens, ACKs
    Mutant(
        "dup-by-mid-alone",
        "lib/coap/client.py",
        "if e >> 2 == mid and self._seen_crc[i] == crc:",
        "if e >> 2 == mid:",
        [CLIENT + "test_same_mid_different_message_is_not_a_duplicate"],
    ),
    Mutant(
        "dup-not-acked-again",
        "lib/coap/client.py",
        "self._control(e & 3, mid)  # the same answer again",
        "pass",
        [CLIENT + "test_duplicate_con_response_acked_again_and_delivered_once"],
    ),
    Mutant(
        "backoff-not-doubled",
        "lib/coap/client.py",
        "self._timeout <<= 1",
        "self._timeout += self._timeout >> 1",
        [CLIENT + "test_retransmission_schedule_doubles"],
    ),
    Mutant(
        "one-retransmission-more",
        "lib/coap/client.py",
        "if self._tries < c.max_retransmit:",
        "if self._tries <= c.max_retransmit:",
        [CLIENT + "test_retransmission_parameters_settable"],
    ),
    Mutant(
        "initial-timeout-not-random",
        "lib/coap/client.py",
        "self._timeout = c.ack_timeout + (c._spread * random.getrandbits(10) >> 10)",
        "self._timeout = c.ack_timeout",
        [CLIENT + "test_initial_timeout_randomised_within_factor"],
    ),
    Mutant(
        "observe-no-wraparound",
        "lib/coap/client.py",
        "if (last < seq and seq - last < 0x800000) or (last > seq and last - seq > 0x800000):",
        "if last < seq:",
        [CLIENT + "test_observe_freshness_wraps_and_ages"],
    ),
    Mutant(
        "observe-no-ageing",
        "lib/coap/client.py",
        "return ticks_diff(now, self.last) > 128000",
        "return False",
        [CLIENT + "test_observe_freshness_wraps_and_ages"],
    ),
    Mutant(
        "observe-stale-delivered",
        "lib/coap/client.py",
        "if ok and not self._fresh(seq, now):",
        "if False:",
        [CLIENT + "test_observe_in_order_and_stale_dropped"],
    ),
    Mutant(
        "response-matched-by-order",
        "lib/coap/client.py",
        "if v.token_is(a.token):",
        "if a.state != _IDLE:",
        [CLIENT + "test_response_matched_by_token_not_order"],
    ),
    Mutant(
        "con-response-not-acked",
        "lib/coap/client.py",
        "reply = (ACK if ex else RST) if mtype == CON else (0 if ex else RST)",
        "reply = (0 if ex else RST) if mtype == CON else (0 if ex else RST)",
        [CLIENT + "test_separate_con_response_without_ack"],
    ),
    Mutant(
        "non-notification-reset",
        "lib/coap/client.py",
        "reply = (ACK if ex else RST) if mtype == CON else (0 if ex else RST)",
        "reply = (ACK if ex else RST) if mtype == CON else RST",
        [CLIENT + "test_observe_non_notifications_not_acked"],
    ),
    Mutant(
        "rst-taken-as-ack",
        "lib/coap/client.py",
        'ex._fail(Reset("reset by peer"))',
        "ex._acked()",
        [CLIENT + "test_reset_of_our_request_raises"],
    ),
    # --- the codec
    Mutant(
        "codec-token-first-byte-only",
        "lib/coap/codec.py",
        "if buf[4 + i] != token[i]:",
        "if buf[4] != token[0]:",
        [CODEC + "test_vectors.py::test_token_is_compares_every_byte"],
    ),
    Mutant(
        "codec-ext-boundary",
        "lib/coap/codec.py",
        "    if v < 269:",
        "    if v <= 269:",
        [CODEC + "test_vectors.py::test_value_length[269]"],
    ),
    Mutant(
        "codec-2-byte-delta",
        "lib/coap/codec.py",
        "delta = (buf[i] << 8 | buf[i + 1]) + 269",
        "delta = (buf[i] << 8 | buf[i + 1]) + 268",
        [CODEC + "test_vectors.py::test_first_option_delta[269]"],
    ),
    Mutant(
        "codec-empty-payload-after-marker",
        "lib/coap/codec.py",
        'if i + 1 >= n:\n                raise MessageError("payload marker',
        'if i + 1 > n:\n                raise MessageError("payload marker',
        [CODEC + "test_malformed.py::test_decode_rejects[payload marker, no payload]"],
    ),
    # --- block-wise
    Mutant(
        "block2-next-number-counted",
        "lib/coap/block.py",
        "num = total >> (exp + 4)",
        "num += 1",
        [CLIENT + "test_block2_server_lowers_the_size_after_the_first_block"],
    ),
    Mutant(
        "block1-smaller-size-ignored",
        "lib/coap/block.py",
        "        if b is not None and (b & 7) < exp:",
        "        if False:",
        [CLIENT + "test_block1_server_asks_for_smaller_blocks"],
    ),
    # --- lib/thingsboard: RPC de-duplication and re-subscription
    Mutant(
        "attributes-end-no-wakeup",
        "lib/thingsboard/device.py",
        "            self.wake.set()\n            return\n        try:",
        "            return\n        try:",
        [
            TBDEV + "test_attributes_relation_ended_by_202_is_renewed_at_once",
            TBDEV + "test_attributes_relation_ended_by_an_error_is_renewed_at_once",
        ],
    ),
    Mutant(
        "rpc-end-no-wakeup",
        "lib/thingsboard/device.py",
        "            self.wake.set()\n            return\n        raw =",
        "            return\n        raw =",
        [TBDEV + "test_rpc_relation_ended_by_202_is_renewed_at_once"],
    ),
    Mutant(
        "resubscribe-no-backoff",
        "lib/thingsboard/device.py",
        "wait = backoff.next()",
        "pass",
        [TBDEV + "test_attributes_relation_reset_on_renewal_is_retried_after_backoff"],
    ),
    Mutant(
        "resubscribe-wait-cut-short",
        "lib/thingsboard/device.py",
        "self.wake.clear()  # the failures set it: they must not cut the wait short",
        "pass",
        [TBDEV + "test_a_refused_subscription_is_retried_after_growing_waits"],
    ),
    Mutant(
        "refused-token-not-held",
        "lib/thingsboard/device.py",
        "self.hold = ticks_add(core.ticks(), wait)",
        "pass",
        [TBDEV + "test_a_refused_token_stops_all_traffic_but_a_slow_try"],
    ),
    Mutant(
        "rate-limit-not-held",
        "lib/thingsboard/device.py",
        "    160: (2000, 60000,",
        "    999: (2000, 60000,",
        [TBDEV + "test_a_device_over_its_rate_limit_gets_one_try_at_a_time"],
    ),
    Mutant(
        "refused-token-held-forever",
        "lib/thingsboard/device.py",
        "elif self.hold is not None:",
        "elif False:",
        [TBDEV + "test_a_token_taken_again_ends_the_hold"],
    ),
    Mutant(
        "telemetry-no-backoff-after-5xx",
        "firmware/telemetry.py",
        "if wait > 0:",
        "if False:",
        [
            "tests/device/mp_telemetry.py::test_a_server_refusing_with_5_00_is_tried_again_after_growing_waits"
        ],
    ),
    Mutant(
        "telemetry-new-message-id-each-interval",
        "firmware/telemetry.py",
        "await self.device.send_telemetry(body)",
        "await self.device.send_telemetry(body, 1000)",
        [
            "tests/device/mp_telemetry.py::test_thirty_percent_loss_at_a_one_second_interval_every_reading_once"
        ],
    ),
    Mutant(
        "telemetry-spool-drains-one-by-one",
        "firmware/telemetry.py",
        "while n < len(records) and p.batchable(records[n]):",
        "while False:",
        [
            "tests/device/mp_telemetry.py::test_fifty_percent_loss_at_half_a_second_every_reading_once"
        ],
    ),
    Mutant(
        "telemetry-drops-on-refused-token",
        "firmware/telemetry.py",
        "if e.code >> 5 == 4 and e.code != 129:",
        "if e.code >> 5 == 4:",
        ["tests/e2e/test_firmware.py::test_a_refused_token_stops_traffic_and_keeps_the_readings"],
    ),
    Mutant(
        "interval-said-again-restarts-timer",
        "firmware/telemetry.py",
        "if ms == self.interval:  # the same again (every new subscription says it)",
        "if False:",
        ["tests/e2e/test_firmware.py::test_an_interval_said_again_changes_nothing"],
    ),
    Mutant(
        "tbsim-no-rate-limit",
        "tools/tbsim/resources.py",
        'if not self.core.limits.check(dev["id"]):',
        "if False:",
        [TBSIM + "test_tbsim_ratelimit.py"],
    ),
    Mutant(
        "reconnected-ignored",
        "lib/thingsboard/device.py",
        "self._renew_all = True",
        "self._renew_all = False",
        [TBDEV + "test_reconnected_renews_both_relations_at_once"],
    ),
    Mutant(
        "silent-relation-never-renewed",
        "lib/thingsboard/device.py",
        "if obs.active and not renew_all and idle < self.observe_refresh:",
        "if obs.active and not renew_all:",
        [TBDEV + "test_silent_relations_are_renewed_after_observe_refresh"],
    ),
    Mutant(
        "rpc-no-dedup",
        "lib/thingsboard/device.py",
        "if seen[0] == rpc_id and seen[1] == crc and ticks_diff(now, seen[2]) < window:",
        "if False:",
        [
            TBDEV + "test_repeated_rpc_runs_once_and_its_lost_reply_is_sent_again",
            TBDEV + "test_repeat_while_running_is_dropped_and_answered_once",
        ],
    ),
    Mutant(
        "rpc-dedup-by-id-alone",
        "lib/thingsboard/device.py",
        "if seen[0] == rpc_id and seen[1] == crc and ticks_diff(now, seen[2]) < window:",
        "if seen[0] == rpc_id and ticks_diff(now, seen[2]) < window:",
        [TBDEV + "test_same_id_with_other_content_or_much_later_is_a_new_rpc"],
    ),
    Mutant(
        "rpc-dedup-forever",
        "lib/thingsboard/device.py",
        "if seen[0] == rpc_id and seen[1] == crc and ticks_diff(now, seen[2]) < window:",
        "if seen[0] == rpc_id and seen[1] == crc:",
        [TBDEV + "test_same_id_with_other_content_or_much_later_is_a_new_rpc"],
    ),
    Mutant(
        "rpc-lost-reply-not-resent",
        "lib/thingsboard/device.py",
        "if seen[4] in (_UNSENT, _CONFIRMED):",
        "if seen[4] == _CONFIRMED:",
        [TBDEV + "test_repeated_rpc_runs_once_and_its_lost_reply_is_sent_again"],
    ),
    Mutant(
        "rpc-reply-while-in-flight",
        "lib/thingsboard/device.py",
        "if seen[4] in (_UNSENT, _CONFIRMED):",
        "if seen[3] is not None:",
        ["tests/device/mp_rpc.py::test_a_repeat_while_the_reply_is_in_flight_sends_nothing"],
    ),
    Mutant(
        "rpc-confirmed-reply-sent-forever",
        "lib/thingsboard/device.py",
        "entry[4] = _AGAIN if again else _SENDING",
        "entry[4] = _SENDING",
        [TBDEV + "test_repeated_rpc_runs_once_and_its_lost_reply_is_sent_again"],
    ),
    Mutant(
        "rpc-confirmed-remembered-too-long",
        "lib/thingsboard/device.py",
        "window = self.rpc_late_ms if seen[4] >= _CONFIRMED else self.rpc_repeat_ms",
        "window = self.rpc_repeat_ms",
        [TBDEV + "test_repeated_rpc_runs_once_and_its_lost_reply_is_sent_again"],
    ),
    # --- the OTA writer and checksums
    Mutant(
        "crc32-big-endian",
        "lib/ota/checksum.py",
        'return self._crc.to_bytes(4, "little")',
        'return self._crc.to_bytes(4, "big")',
        [OTA + "test_checksum_formats"],
    ),
    Mutant(
        "ota-erase-skipped",
        "lib/ota/writer.py",
        "self._erased += BLOCK",
        "self._erased += 2 * BLOCK",
        [OTA + "test_writer_erases_each_block_before_writing_it"],
    ),
    Mutant(
        "ota-no-readback",
        "lib/ota/writer.py",
        "got = checksum.hexdigest(h)",
        "got = expected",
        [OTA + "test_readback_catches_a_bad_flash_write"],
    ),
    Mutant(
        "ota-short-image-finishes",
        "lib/ota/writer.py",
        "if self.flashed != self.size:",
        "if self.flashed > self.size:",
        [OTA + "test_too_much_data_and_short_image_refused"],
    ),
    Mutant(
        "ota-too-much-data-taken",
        "lib/ota/writer.py",
        "if end > self.size:",
        "if False:",
        [OTA + "test_too_much_data_and_short_image_refused"],
    ),
    Mutant(
        "ota-checksum-case",
        "lib/ota/writer.py",
        "self._expected = (algorithm, str(expected).strip().lower())",
        "self._expected = (algorithm, str(expected).strip())",
        [OTA + "test_uppercase_expected_checksum_accepted"],
    ),
    Mutant(
        "ota-resume-magic-unchecked",
        "lib/ota/writer.py",
        "self._check_magic(first[0])",
        "pass",
        [OTA + "test_resume_of_a_non_app_refused"],
    ),
    Mutant(
        "ota-piece-past-a-gap-counted-flashed",
        "lib/ota/writer.py",
        "if at > self.flashed:",
        "if False:",
        [OTA + "test_pieces_in_any_order", OTA + "test_resume_after_a_power_cut_in_a_window"],
    ),
    # --- the spool
    Mutant(
        "spool-drops-uncounted",
        "firmware/spool.py",
        "self.dropped += 1",
        "pass",
        [SPOOL + "test_full_drops_oldest_and_counts"],
    ),
    Mutant(
        "spool-torn-tail-kept",
        "firmware/spool.py",
        "if off < end:",
        "if False:",
        [SPOOL + "test_torn_tail_at_every_offset"],
    ),
    Mutant(
        "spool-record-crc-unchecked",
        "firmware/spool.py",
        "if f.readinto(mv) != n or crc32(mv, crc32(h[:2])) != crc:",
        "if f.readinto(mv) != n:",
        [SPOOL + "test_corrupt_byte_in_last_record"],
    ),
    Mutant(
        "spool-head-crc-unchecked",
        "firmware/spool.py",
        'if len(b) == 16 and struct.unpack_from("<I", b, 12)[0] == crc32(b[:12]):',
        "if len(b) == 16:",
        [SPOOL + "test_head_with_a_flipped_bit_loses_nothing"],
    ),
    Mutant(
        "spool-clear-dropped-forgets-newer",
        "firmware/spool.py",
        "self.dropped = 0 if n is None else max(0, self.dropped - n)",
        "self.dropped = 0",
        [SPOOL + "test_reopen_keeps_order_and_dropped"],
    ),
    Mutant(
        "spool-one-segment",
        "firmware/spool.py",
        "if self._size and self._size + size > self._seg_max:",
        "if False:",
        [SPOOL + "test_many_cycles_stay_bounded"],
    ),
    # --- the config rules
    Mutant(
        "config-1wire-pin-shared",
        "firmware/config.py",
        'elif use != "bus" or first[1] != "bus":',
        'elif use != "bus" and first[1] != "bus":',
        [
            CONFIG + "test_bad_config_problems[1-Wire bus on a gpio output]",
            CONFIG + "test_bad_config_problems[1-Wire bus on the led]",
            CONFIG + "test_bad_config_problems[dht on a 1-Wire bus]",
        ],
    ),
    Mutant(
        "config-1wire-bus-never-shared",
        "firmware/config.py",
        'elif use != "bus" or first[1] != "bus":',
        "else:",
        [CONFIG + "test_ds18b20_sensors_share_a_1wire_pin"],
    ),
    Mutant(
        "config-input-only-boundary",
        "firmware/chips.py",
        "_r(32, 39)), _r(34, 39)),",
        "_r(32, 39)), _r(35, 39)),",
        [CONFIG + "test_bad_config_problems[1-Wire bus on input-only pin]"],
    ),
    Mutant(
        "config-shared-bus-needs-no-rom",
        "firmware/config.py",
        "for i in shared if len(shared) > 1 else ():",
        "for i in shared if len(shared) > 2 else ():",
        [CONFIG + "test_bad_config_problems[shared 1-Wire bus needs roms]"],
    ),
    Mutant(
        "config-telemetry-key-twice",
        "firmware/config.py",
        "if n in keys:",
        "if n in ():",
        [CONFIG + "test_bad_config_problems[dht keys taken]"],
    ),
    # --- the update states (the firmware on the unix port against tbsim)
    Mutant(
        "update-verified-not-reported",
        "firmware/fetch.py",
        'await report(u, "VERIFIED")',
        "pass",
        [UPD + "test_full_update_reboots_into_the_new_image_and_confirms_it[json]"],
    ),
    Mutant(
        "update-failed-package-fetched-again",
        "firmware/fetch.py",
        'mine["failed"] = pkg',
        'mine["failed"] = None',
        [UPD + "test_checksum_mismatch_fails_and_never_switches_the_boot_slot"],
    ),
    Mutant(
        "update-rolled-back-package-fetched-again",
        "firmware/trial.py",
        'mine["failed"] = trying["pkg"]',
        'mine["failed"] = None',
        [UPD + "test_a_new_image_that_fails_its_self_test_is_rolled_back"],
    ),
    # --- tbsim's ThingsBoard behaviours
    Mutant(
        "tbsim-rst-keeps-relation",
        "tools/tbsim/observe.py",
        'on_rst=lambda: registry.cancel(self, "RST"),',
        "on_rst=lambda: None,",
        [TBSIM + "test_tbsim_observe.py::test_rst_cancels_the_relation"],
    ),
    Mutant(
        "tbsim-timeout-cancels-one-relation",
        "tools/tbsim/observe.py",
        'on_timeout=lambda: registry.cancel_peer(peer, "notification timed out"),',
        'on_timeout=lambda: registry.cancel(self, "notification timed out"),',
        [
            TBSIM
            + "test_tbsim_observe.py::test_unacked_notification_cancels_all_relations_of_that_peer"
        ],
    ),
    Mutant(
        "tbsim-two-cons-in-flight",
        "tools/tbsim/observe.py",
        "            self.queued = note",
        "            self._send(note)",
        [TBSIM + "test_tbsim_observe.py::test_one_con_in_flight_and_newer_replaces_queued"],
    ),
    Mutant(
        "tbsim-replaced-relation-no-202",
        "tools/tbsim/observe.py",
        'self.cancel(old, "replaced by a new subscription", deleted=True)',
        'self.cancel(old, "replaced by a new subscription", deleted=False)',
        [TBSIM + "test_tbsim_observe.py::test_pending_rpcs_are_resent_on_resubscribe"],
    ),
    Mutant(
        "tbsim-pending-rpcs-not-resent",
        "tools/tbsim/rpc.py",
        "for rpc in sorted(self.pending.get(device_id, {}).values(), key=lambda r: r.id):",
        "for rpc in ():",
        [TBSIM + "test_tbsim_observe.py::test_pending_rpcs_are_resent_on_resubscribe"],
    ),
    Mutant(
        "tbsim-psm-never-sleeps",
        "tools/tbsim/power.py",
        "if since <= self._awake_for(mode, psm, window):",
        "if True:",
        [TBSIM + "test_tbsim_power.py::test_psm_holds_rpcs_until_the_next_uplink"],
    ),
    Mutant(
        "tbsim-merge-keeps-earlier-deletes",
        "tools/tbsim/power.py",
        "    return merged, list(deleted)",
        "    return merged, queued[1] + list(deleted)",
        [TBSIM + "test_tbsim_power.py::test_merge_keeps_only_the_last_deletes"],
    ),
    Mutant(
        "tbsim-separate-response-not-resent",
        "tools/tbsim/transport.py",
        "if self.separate is not None and not self.separate.done:",
        "if False:",
        [TBSIM + "test_tbsim_reply_styles.py::test_duplicate_before_ack_of_response_resends_it"],
    ),
    Mutant(
        "sleep-recall-forgets-rpcs",
        "lib/thingsboard/device.py",
        "self._rpc_seen.append([rpc_id, crc, now, reply, _UNSENT])",
        "pass",
        [TBDEV + "test_rpcs_recalled_after_a_power_cut_are_answered_never_run_again"],
    ),
    Mutant(
        "sleep-journal-not-written",
        "firmware/sleep.py",
        "d.on_rpc_change = self._write_journal",
        "pass",
        ["tests/e2e/test_sleep.py::test_a_power_cut_after_an_rpc_ran_does_not_run_it_again"],
    ),
    Mutant(
        "sleep-ids-go-on-after-a-reset",
        "firmware/sleep.py",
        'if not k.get("port") or board.reset_cause() != "deepsleep":',
        'if not k.get("port"):',
        [
            "tests/e2e/test_sleep.py::"
            "test_a_firmware_update_assigned_while_asleep_completes_and_the_board_sleeps_again"
        ],
    ),
    Mutant(
        "tbsim-crc32-big-endian",
        "tools/tbsim/ota.py",
        '.to_bytes(4, "little").hex()\n    if algorithm == "MURMUR3_32"',
        '.to_bytes(4, "big").hex()\n    if algorithm == "MURMUR3_32"',
        [TBSIM + "test_tbsim_ota.py::test_checksums_are_formatted_like_guava"],
    ),
    Mutant(
        "tbsim-provision-secret-unchecked",
        "tools/tbsim/core.py",
        'or profile["provision_secret"] != secret',
        "or False",
        [TBSIM + "test_tbsim_provision.py::test_unknown_key_or_wrong_secret_is_not_found"],
    ),
]


def check(mutants):
    # every listed line is in its file exactly once, and no mutant leans on a fuzz test
    problems = []
    for m in mutants:
        path = ROOT / m.path
        n = path.read_text().count(m.old) if path.exists() else 0
        if n != 1:
            where = "not found" if n == 0 else "found %d times" % n
            problems.append("%s: %s: %r %s" % (m.name, m.path, m.old, where))
        fuzz = [t for t in m.tests if t.startswith(FUZZ)]
        if fuzz or not m.tests:
            problems.append("%s: needs deterministic tests, not %s" % (m.name, fuzz or "none"))
    names = [m.name for m in mutants]
    problems += ["%s: listed twice" % n for n in sorted(set(names)) if names.count(n) > 1]
    return problems


def copy_repo(dest):
    # the working tree's files git knows or would add (not build/, .venv, caches), with the
    # shared .venv and the prebuilt twin reachable
    git = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    files = subprocess.run(git, cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for f in filter(None, files):
        src, dst = ROOT / f.decode(), dest / f.decode()
        if src.is_file():  # not one deleted in the working tree
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    (dest / ".venv").symlink_to((ROOT / ".venv").resolve())
    if (ROOT / "build" / "twin").exists():
        (dest / "build").mkdir(exist_ok=True)
        (dest / "build" / "twin").symlink_to((ROOT / "build" / "twin").resolve())


def run_tests(repo, tests):
    # -> (pytest exit status or "timeout", seconds, output)
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    try:
        p = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=TIMEOUT, env=env)
        rc, out = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out = "timeout", str(e.stdout or "")
    return rc, time.monotonic() - t0, out


class Workers:
    # one copy of the repository per worker thread, so mutants can run side by side
    def __init__(self, base):
        self.base = base
        self.local = threading.local()
        self.lock = threading.Lock()
        self.n = 0

    def repo(self):
        if not hasattr(self.local, "repo"):
            with self.lock:
                self.n += 1
                d = self.base / ("copy%d" % self.n)
            copy_repo(d)
            self.local.repo = d
        return self.local.repo


def run_mutant(workers, m):
    repo = workers.repo()
    path = repo / m.path
    text = path.read_text()
    path.write_text(text.replace(m.old, m.new))
    try:
        rc, secs, out = run_tests(repo, m.tests)
    finally:
        path.write_text(text)
    # pytest 2-5: interrupted, internal or usage error (a test id not found), nothing collected
    verdict = {1: "caught", 0: "SURVIVED", "timeout": "HUNG"}.get(rc, "ERROR")
    return verdict, secs, "%s\n(pytest exit %s)" % (out[-3000:], rc)


def main(argv=None):
    ap = argparse.ArgumentParser(description="apply each listed mutant, run its tests")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="mutants at a time (default 2)")
    ap.add_argument("-v", "--verbose", action="store_true", help="show the tests' output")
    ap.add_argument("names", nargs="*", help="run only these mutants")
    a = ap.parse_args(argv)
    problems = check(MUTANTS)
    if problems:
        print("the mutant list no longer matches the code:", *problems, sep="\n  ")
        return 2
    unknown = set(a.names) - {m.name for m in MUTANTS}
    if unknown:
        print("no such mutant:", ", ".join(sorted(unknown)))
        return 2
    todo = [m for m in MUTANTS if not a.names or m.name in a.names]
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        workers = Workers(Path(tmp))
        # first the listed tests on the unchanged code: a test that fails anyway catches nothing
        tests = sorted({t for m in todo for t in m.tests})
        rc, secs, out = run_tests(workers.repo(), tests)
        if rc != 0:
            print(out[-4000:])
            print("the listed tests fail without any mutant (pytest exit %s)" % rc)
            return 1
        print("%d tests pass on the unchanged code (%.0f s)" % (len(tests), secs), flush=True)
        failed = []
        with ThreadPoolExecutor(max(1, a.jobs)) as pool:
            jobs = [(m, pool.submit(run_mutant, workers, m)) for m in todo]
            for m, job in jobs:
                verdict, secs, out = job.result()
                print("%-9s %-41s %4.0f s  %s" % (verdict, m.name, secs, m.path), flush=True)
                if verdict != "caught":
                    failed.append(m.name)
                    if a.verbose or verdict == "ERROR":
                        print(out)
    caught = len(todo) - len(failed)
    wall = time.monotonic() - t0
    print(
        "mutation score: %d of %d caught (%.0f %%) in %dm%02ds"
        % (caught, len(todo), 100.0 * caught / len(todo), wall // 60, wall % 60)
    )
    if failed:
        print("not caught:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
