"""`python -m engine`: run, validate, convert and nodes, as a user calls them."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.pngmeta import read_png_metadata

pytestmark = pytest.mark.slow  # every test launches `python -m engine`

ROOT = Path(__file__).resolve().parents[2]
TOY_PACK = Path(__file__).with_name("toy_nodes.py")
NOTICE_PACK = ROOT / "tests" / "web" / "toy_queue_nodes.py"  # its NoticeNumber sends a notice as a UNet compile does


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "engine", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


@pytest.fixture
def workdir(tmp_path):
    """A folder with the toy node pack as an extension and a few workflows."""
    (tmp_path / "custom_nodes").mkdir()
    shutil.copy(TOY_PACK, tmp_path / "custom_nodes" / "toy_pack.py")
    write(tmp_path / "sum.json", {"1": {"class_type": "Number", "inputs": {"value": 2}},
                                  "2": {"class_type": "Number", "inputs": {"value": 3}},
                                  "3": {"class_type": "Add", "_meta": {"title": "Total"},
                                        "inputs": {"a": ["1", 0], "b": ["2", 0]}},
                                  "4": {"class_type": "Show", "inputs": {"value": ["3", 0]}}})
    write(tmp_path / "broken.json", {"1": {"class_type": "Number", "inputs": {"value": "many"}},
                                     "2": {"class_type": "Scale", "inputs": {"value": ["1", 0], "factor": 500}},
                                     "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}}})
    write(tmp_path / "fails.json", {"1": {"class_type": "Number", "inputs": {"value": 2}},
                                    "2": {"class_type": "Fail", "inputs": {"value": ["1", 0], "fail": True}},
                                    "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}}})
    return tmp_path


def write(path, data):
    path.write_text(json.dumps(data))


def test_run_writes_a_png_and_prints_its_path(tmp_path):
    result = cli("run", ROOT / "workflows" / "solid_color.json", "--output-dir", tmp_path / "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path.parent == tmp_path / "out" and path.name == "solid_color_00001_.png"
    meta = read_png_metadata(path)
    assert meta.prompt == json.loads((ROOT / "workflows" / "solid_color.json").read_text())


def test_set_overrides_an_input_by_node_id_or_title(tmp_path):
    result = cli("run", ROOT / "workflows" / "solid_color.json", "--output-dir", tmp_path,
                 "--set", "1.color=255", "--set", "Canvas.width=8", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    prompt = read_png_metadata(Path(result.stdout.strip())).prompt
    assert prompt["1"]["inputs"]["color"] == 255 and prompt["1"]["inputs"]["width"] == 8


def test_run_prints_a_progress_notice_on_stderr_as_its_own_line(workdir):
    shutil.copy(NOTICE_PACK, workdir / "custom_nodes" / NOTICE_PACK.name)
    notice = "compiling UNet for this CPU, one-time, a few minutes"
    write(workdir / "notice.json", {"1": {"class_type": "NoticeNumber", "inputs": {"value": 4, "text": notice}},
                                    "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}}})
    result = cli("run", "notice.json", cwd=workdir)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert notice in lines and lines.index("running NoticeNumber (node 1)") < lines.index(notice)


def test_invalid_workflow_exits_2_with_errors_in_plain_language(workdir):
    result = cli("run", "broken.json", cwd=workdir)
    assert result.returncode == 2
    assert "Number (node 1), input 'value': Failed to convert an input value to a INT value" in result.stderr
    assert "Scale (node 2), input 'factor': Value 500 bigger than max of 100" in result.stderr


def test_execution_error_exits_1_naming_the_node(workdir):
    result = cli("run", "fails.json", cwd=workdir)
    assert result.returncode == 1
    assert "execution failed in Fail (node 2): toy failure requested" in result.stderr


def test_validate_exit_codes_and_json(workdir):
    assert cli("validate", "sum.json", cwd=workdir).returncode == 0
    result = cli("validate", "broken.json", "--json", cwd=workdir)
    assert result.returncode == 2
    body = json.loads(result.stdout)
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert body["node_errors"]["2"]["errors"][0]["type"] == "value_bigger_than_max"


def test_set_on_a_missing_node_or_bad_syntax_exits_2(workdir):
    assert "no node '9'" in cli("validate", "sum.json", "--set", "9.value=1", cwd=workdir).stderr
    assert cli("validate", "sum.json", "--set", "9.value=1", cwd=workdir).returncode == 2
    assert "expected NODE.INPUT=VALUE" in cli("validate", "sum.json", "--set", "seed", cwd=workdir).stderr


def test_unreadable_and_non_workflow_files_exit_2(workdir):
    (workdir / "junk.json").write_text("{oops")
    assert cli("run", "missing.json", cwd=workdir).returncode == 2
    result = cli("run", "junk.json", cwd=workdir)
    assert result.returncode == 2 and "not a workflow" in result.stderr


def test_convert_prints_api_format(workdir):
    ui = {"last_node_id": 2, "last_link_id": 1, "version": 0.4, "groups": [], "config": {}, "extra": {},
          "nodes": [{"id": 1, "type": "Number", "mode": 0, "inputs": [], "widgets_values": [5],
                     "outputs": [{"name": "value", "type": "INT", "links": [1]}]},
                    {"id": 2, "type": "Show", "mode": 0, "inputs": [{"name": "value", "type": "*", "link": 1}],
                     "outputs": [], "widgets_values": []}],
          "links": [[1, 1, 0, 2, 0, "INT"]]}
    write(workdir / "ui.json", ui)
    result = cli("convert", "ui.json", cwd=workdir)
    assert result.returncode == 0, result.stderr
    api = json.loads(result.stdout)
    assert api["1"]["inputs"] == {"value": 5} and api["2"]["inputs"] == {"value": ["1", 0]}


def test_run_accepts_a_png_that_carries_a_workflow(tmp_path):
    first = cli("run", ROOT / "workflows" / "solid_color.json", "--output-dir", tmp_path, cwd=tmp_path)
    png = Path(first.stdout.strip())
    again = cli("run", png, "--output-dir", tmp_path, "--set", "1.color=0", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert Path(again.stdout.strip()).name == "solid_color_00002_.png"


def test_nodes_lists_declarations_and_json_is_object_info(workdir):
    listing = cli("nodes", cwd=workdir)
    assert "SaveImage [image]" in listing.stdout
    assert "Add [toy/math] (a: INT, b: INT, c: INT?) -> sum: INT" in listing.stdout
    info = json.loads(cli("nodes", "--json", cwd=workdir).stdout)
    assert info["Scale"]["input"]["required"]["factor"] == ["INT", {"default": 2, "min": 0, "max": 100, "step": 1}]


def test_a_broken_extension_is_reported_and_skipped(workdir):
    (workdir / "custom_nodes" / "broken.py").write_text("import not_a_module_anywhere\n")
    result = cli("validate", "sum.json", cwd=workdir)
    assert result.returncode == 0
    assert "node pack 'broken.py' was skipped" in result.stderr
