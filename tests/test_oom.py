"""richinit.oom on fixture files: the OOM killer's count from cgroup v2 memory.events or v1 memory.oom_control."""

from richinit.oom import OomCounter, read_count


def test_counts_new_kills_since_the_last_look(tmp_path):
    v1 = tmp_path / "memory.oom_control"
    v1.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    c = OomCounter([str(tmp_path / "absent"), str(v1)])
    assert c.path == str(v1) and c.new_kills() == 0  # the kills before we looked are not ours
    v1.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 5\n")
    assert c.new_kills() == 2 and c.new_kills() == 0


def test_v2_events_and_no_cgroup(tmp_path):
    v2 = tmp_path / "memory.events"
    v2.write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n")
    assert read_count(str(v2)) == 1
    assert OomCounter([str(tmp_path / "none")]).new_kills() == 0
