"""Rich mode for a container run as a user (docker run --user): the /run tmpfs is that user's, and
richinit skips the services that need root, saying so."""

from richinit import main
from runtime_hooks import ociconfig


def _cfg(user):
    return {"process": {"args": ["/app"], "user": user}, "root": {"path": "rootfs"}}


def test_run_tmpfs_belongs_to_the_containers_user():
    prefix = ["/loader", "-c", "x"]
    run = [m for m in ociconfig.rewrite(_cfg({"uid": 65534, "gid": 65534}), "/rt", prefix)["mounts"]
           if m["destination"] == "/run"][0]
    assert run["options"][-2:] == ["uid=65534", "gid=65534"]
    for user in ({"uid": 0, "gid": 0}, {}, {"uid": "65534"}):
        run = [m for m in ociconfig.rewrite(_cfg(user), "/rt", prefix)["mounts"] if m["destination"] == "/run"][0]
        assert not any(o.startswith(("uid=", "gid=")) for o in run["options"]), user


def test_services_that_need_root_are_skipped_with_the_reason():
    doc = {"services": [{"name": "syslog", "origin": "default"}, {"name": "web", "origin": "image"},
                        {"name": "db", "origin": "image", "user": "postgres"},
                        {"name": "mine", "origin": "s6-overlay", "user": "1000"}],
           "skipped": {"sshd": "condition: /usr/sbin/sshd missing"}}
    main._skip_root_only(doc, 1000)
    assert doc["skipped"] == {"sshd": "condition: /usr/sbin/sshd missing", "syslog": "needs root (running as uid 1000)",
                              "db": "needs root (running as uid 1000)"}
