"""Project IDs: handed out from 16777216 up, recorded on disk under a file lock.

The registry is one JSON file, STATE/quota/ids.json: {"<id>": {"container": C, "key": K,
"persistent": bool}}. Every change happens under flock(STATE/quota/ids.lock) and is written to a
temporary file and renamed, so a crash leaves either the old or the new registry, and parallel
hooks (separate processes or threads with their own open of the lock) never hand out one ID twice.

An ID is bound to (container, key) — key names the quota directory — so the same container gets
the same ID again after a restart. release() drops a container's IDs; persistent ones (volumes
that outlive the container) can be kept on request.
"""

import fcntl
import json
import os
from contextlib import contextmanager

FIRST_ID = 16777216        # PouchContainer's range: clear of IDs people pick by hand
LAST_ID = (1 << 32) - 2    # 4294967295 is (u32)-1


class IdError(RuntimeError):
    pass


class IdAllocator:
    def __init__(self, state_dir):
        self.dir = os.path.join(state_dir, "quota")
        self.path = os.path.join(self.dir, "ids.json")
        self.lock_path = os.path.join(self.dir, "ids.lock")

    @contextmanager
    def _locked(self):
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the flock

    def _load(self):
        try:
            with open(self.path) as f:
                data = json.load(f)
        except FileNotFoundError:
            return {}
        except ValueError as e:
            raise IdError("%s: not valid JSON (%s); refusing to hand out IDs" % (self.path, e))
        return {int(k): v for k, v in data.items()}

    def _save(self, table):
        tmp = "%s.%d.tmp" % (self.path, os.getpid())
        with open(tmp, "w") as f:
            json.dump({str(k): v for k, v in sorted(table.items())}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, self.path)

    def allocate(self, container, key, persistent=False, wanted=None):
        """The ID of (container, key): the recorded one, `wanted`, or the lowest free one."""
        return self.allocate_new(container, key, persistent, wanted)[0]

    def allocate_new(self, container, key, persistent=False, wanted=None):
        """(id, True when it was handed out just now) — rollback releases only new ones."""
        with self._locked():
            table = self._load()
            for qid, e in table.items():
                if e["container"] == container and e["key"] == key:
                    if wanted is not None and wanted != qid:
                        raise IdError("%s already has project ID %d, not %d" % (key, qid, wanted))
                    return qid, False
            if wanted is not None:
                if wanted in table:
                    owner = table[wanted]
                    raise IdError("project ID %d is taken by container %s (%s)"
                                  % (wanted, owner["container"], owner["key"]))
                qid = wanted
            else:
                qid = FIRST_ID
                while qid in table:
                    qid += 1
                if qid > LAST_ID:
                    raise IdError("no free project ID left")
            table[qid] = {"container": container, "key": key, "persistent": bool(persistent)}
            self._save(table)
            return qid, True

    def release(self, container, keep_persistent=False, ids=None):
        """Drop the container's IDs (only `ids` when given); returns the IDs released."""
        if not os.path.exists(self.path):
            return []  # nothing was ever handed out here: do not create the state dir
        with self._locked():
            table = self._load()
            gone = [qid for qid, e in table.items()
                    if e["container"] == container and (ids is None or qid in ids)
                    and not (keep_persistent and e.get("persistent"))]
            for qid in gone:
                del table[qid]
            if gone:
                self._save(table)
            return sorted(gone)

    def owned(self, container=None):
        """{id: entry} for one container or all of them."""
        if not os.path.exists(self.path):
            return {}
        with self._locked():
            table = self._load()
        return {k: v for k, v in table.items() if container is None or v["container"] == container}
