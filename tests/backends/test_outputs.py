"""Files a worker wrote on its own machine reach the server's folders, never overwriting one."""

from __future__ import annotations

from engine.backends.outputs import OutputReceiver, OutputShipper
from engine.paths import Paths


def test_files_are_shipped_once_and_renamed_when_the_name_is_taken(tmp_path):
    worker = Paths(output_dir=tmp_path / "worker-out", temp_dir=tmp_path / "worker-temp")
    server = Paths(output_dir=tmp_path / "out", temp_dir=tmp_path / "temp")
    (worker.output_dir / "sub").mkdir(parents=True)
    (worker.output_dir / "sub" / "img_00001_.png").write_bytes(b"new")
    (server.output_dir / "sub").mkdir(parents=True)
    (server.output_dir / "sub" / "img_00001_.png").write_bytes(b"someone else's")
    ui = {"images": [{"filename": "img_00001_.png", "subfolder": "sub", "type": "output"}], "text": ["x"]}

    shipper, receiver = OutputShipper(worker), OutputReceiver(server)
    files = shipper.new_files(ui)
    assert [(f["filename"], f["data"]) for f in files] == [("img_00001_.png", b"new")]
    assert shipper.new_files(ui) == [], "a cached re-run does not send the file again"
    assert receiver.receive("w0", files[0]) == "img_00002_.png"
    assert (server.output_dir / "sub" / "img_00001_.png").read_bytes() == b"someone else's"
    assert (server.output_dir / "sub" / "img_00002_.png").read_bytes() == b"new"
    assert receiver.rename("w0", ui)["images"][0]["filename"] == "img_00002_.png"
    other = {"images": [{"filename": "img_00001_.png", "subfolder": "sub", "type": "output"}]}
    assert receiver.rename("w1", other)["images"][0]["filename"] == "img_00001_.png", "names are per worker"


def test_uncounted_names_get_a_number_and_input_files_are_refused(tmp_path):
    receiver = OutputReceiver(Paths(output_dir=tmp_path / "out", temp_dir=tmp_path / "temp"))
    first = receiver.receive("w0", {"type": "temp", "subfolder": "", "filename": "a.png", "data": b"1"})
    second = receiver.receive("w1", {"type": "temp", "subfolder": "", "filename": "a.png", "data": b"2"})
    assert (first, second) == ("a.png", "a (1).png")
    try:
        receiver.receive("w0", {"type": "input", "subfolder": "", "filename": "x.png", "data": b""})
    except ValueError as exc:
        assert "expected output or temp" in str(exc)
    else:
        raise AssertionError("a worker may not write into the input folder")
