# slots.py: the two slots of each kind of update, one running: the app partitions for "fw",
# the app slots of lib/ota/appslot.py for "sw". Imported only while they are needed (at boot,
# to confirm a trial, during an update: firmware/__init__.py use()), with lib/ota's modules
# and, on the simulation, the partition code.
# Each kind imports only its own part of lib/ota.
import os

from ota import MAGIC


def of(kind, board):
    return FirmwareSlots(board.partition) if kind == "fw" else AppSlots(board.path(""))


class FirmwareSlots:
    # the app partitions, through the board's esp32.Partition
    magic = MAGIC  # an ESP32 app image

    def __init__(self, partition):
        self.P = partition

    def boot(self):
        # -> (the running slot, whether it is on trial)
        P = self.P
        return P(P.RUNNING).info()[4], self.pending()

    def target(self):
        # the partition an update is written to (its set_boot switches to it)
        P = self.P
        return P(P.RUNNING).get_next_update()

    def next(self):
        return self.target().info()[4]

    def pending(self):
        from ota import rollback

        try:
            return rollback.pending(self.P)
        except (OSError, IndexError):  # a build without OTA partitions: never pending
            return False

    def confirm(self):
        from ota import rollback

        rollback.cancel(self.P)

    def why(self):
        return None  # the bootloader keeps no reason


class AppSlots:
    # app bundles: the app slots of lib/ota/appslot.py, filled by bundle.py
    magic = None  # a bundle checks its own when it is unpacked

    def __init__(self, root):
        from ota import appslot

        self.root = root
        self._slot = appslot

    def boot(self):
        a = self._slot
        return a.running(self.root) or "factory", a.pending(self.root)

    def target(self):
        # the bundle store: its set_boot unpacks into the next slot and points boot.py at it
        from .bundle import BundleStore

        st = os.statvfs(self.root or ".")
        room = st[0] * st[4] // 2  # half the free flash: the download, then its unpacked files
        return BundleStore(self.root, self.next(), room)

    def next(self):
        return self._slot.other(self.root)

    def confirm(self):
        self._slot.confirm(self.root)

    def why(self):
        return self._slot.read(self.root).get("reason")
