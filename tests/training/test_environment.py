"""environment.json: one entry per training session, appended, never a reason to fail."""
import json
import os

import pytest

from air.training import environment


def test_sessions_are_appended_in_order_with_the_iteration_each_started_from(tmp_path):
    results = str(tmp_path)
    environment.record_session(results, 0, 0)
    environment.record_session(results, 1200, 2)
    sessions = environment.read(results)
    assert [(s["iteration"], s["threads"]) for s in sessions] == [(0, 0), (1200, 2)]
    assert not os.path.exists(os.path.join(results, environment.FILENAME + ".partial"))


@pytest.mark.parametrize("text", ["{not json", '{"iteration": 0}', ""])
def test_an_unreadable_file_reads_as_no_sessions_and_the_next_session_starts_it_anew(
        tmp_path, text):
    path = tmp_path / environment.FILENAME
    path.write_text(text)
    assert environment.read(str(tmp_path)) == []
    environment.record_session(str(tmp_path), 5, 0)
    assert [s["iteration"] for s in json.loads(path.read_text())] == [5]


def test_the_processor_name_is_a_model_name_of_proc_cpuinfo_where_there_is_one():
    name = environment.processor_name()
    assert name
    if os.path.isfile("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            names = {line.split(":", 1)[1].strip() for line in f if line.startswith("model name")}
        assert not names or name in names
