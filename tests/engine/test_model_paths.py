"""Model folders from an extra-paths YAML (ComfyUI's format), and model name aliases
(`models/aliases.yaml`) that let shared workflows run unedited on the models a user has."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import EngineConfig
from engine.model_paths import ModelPathsError, read_extra_model_paths, read_model_aliases
from engine.paths import ModelFiles, Paths, UnsafePathError

ROOT = Path(__file__).resolve().parents[2]

A1111_AND_COMFY = """\
a111:
    base_path: webui/

    checkpoints: models/Stable-diffusion
    configs: models/Stable-diffusion
    vae: models/VAE
    loras: |
         models/Lora
         models/LyCORIS
    upscale_models: |
                  models/ESRGAN
                  models/SwinIR
    embeddings: embeddings
    hypernetworks: models/hypernetworks

comfyui:
    base_path: {comfy}
    is_default: true
    checkpoints: models/checkpoints/
    vae: models/vae/
    loras: models/loras/
"""


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_yaml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- the extra-paths file ------------------------------------------------------------------

def test_sections_add_folders_per_kind_relative_to_their_base_path(tmp_path):
    comfy = tmp_path / "elsewhere" / "ComfyUI"
    file = write_yaml(tmp_path / "conf" / "extra_model_paths.yaml", A1111_AND_COMFY.format(comfy=comfy))
    dirs = read_extra_model_paths(file)
    webui = tmp_path / "conf" / "webui"  # a relative base_path is relative to the YAML file's folder
    assert dirs["checkpoints"] == [webui / "models/Stable-diffusion", comfy / "models/checkpoints"]
    assert dirs["loras"] == [webui / "models/Lora", webui / "models/LyCORIS", comfy / "models/loras"]
    assert dirs["embeddings"] == [webui / "embeddings"]
    assert dirs["vae"] == [webui / "models/VAE", comfy / "models/vae"]
    assert dirs["upscale_models"] == [webui / "models/ESRGAN", webui / "models/SwinIR"]  # kept, unused by us
    assert "base_path" not in dirs and "is_default" not in dirs


def test_base_path_expands_home_and_variables_and_may_be_absent(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SD_ROOT", str(tmp_path / "sd"))
    file = write_yaml(tmp_path / "extra.yaml", "a:\n  base_path: ~/webui\n  vae: VAE\n"
                                               "b:\n  base_path: $SD_ROOT\n  vae: vae\n"
                                               "c:\n  checkpoints: my/ckpts\n  vae:\n"
                                               "empty:\n")
    dirs = read_extra_model_paths(file)
    assert dirs["vae"] == [tmp_path / "home/webui/VAE", tmp_path / "sd/vae"]
    assert dirs["checkpoints"] == [tmp_path / "my/ckpts"]


def test_an_empty_file_adds_nothing(tmp_path):
    assert read_extra_model_paths(write_yaml(tmp_path / "extra.yaml", "# nothing yet\n")) == {}


@pytest.mark.parametrize("text, expected", [
    ("- checkpoints\n", "expected sections"),
    ("a111: models/Stable-diffusion\n", "section 'a111' must map kinds to folders"),
    ("a111:\n  checkpoints: [a, b]\n", "a111.checkpoints must be a folder, or several one per line"),
    ("a111:\n  base_path: [x]\n", "a111.base_path must be a folder name"),
    ("a111:\n  checkpoints: 'unclosed\n", "is not valid YAML"),
])
def test_a_malformed_file_is_reported_with_its_name_and_entry(tmp_path, text, expected):
    file = write_yaml(tmp_path / "extra.yaml", text)
    with pytest.raises(ModelPathsError, match=expected) as raised:
        read_extra_model_paths(file)
    assert str(file) in str(raised.value)


def test_a_missing_file_is_reported(tmp_path):
    with pytest.raises(ModelPathsError, match="cannot read"):
        read_extra_model_paths(tmp_path / "nope.yaml")


def test_models_in_extra_folders_are_listed_and_found_after_our_own(tmp_path):
    webui = tmp_path / "webui"
    touch(webui / "models/Stable-diffusion/dreamshaper_8.safetensors")
    touch(webui / "models/Stable-diffusion/sub/realistic.ckpt")
    touch(webui / "models/Stable-diffusion/shared.safetensors", b"theirs")
    touch(tmp_path / "models/checkpoints/shared.safetensors", b"ours")
    file = write_yaml(tmp_path / "extra.yaml", "a111:\n  base_path: webui\n  checkpoints: models/Stable-diffusion\n")
    paths = EngineConfig(models_dir=tmp_path / "models", extra_model_paths=file).paths()
    choices = ModelFiles("checkpoints", (".safetensors", ".ckpt")).choices(paths)
    assert choices == ["dreamshaper_8.safetensors", "shared.safetensors", "sub/realistic.ckpt"]
    assert paths.model_path("checkpoints", "sub/realistic.ckpt") == (
        webui / "models/Stable-diffusion/sub/realistic.ckpt").resolve()
    assert paths.model_path("checkpoints", "shared.safetensors").read_bytes() == b"ours"


def test_no_extra_paths_file_means_only_the_models_folder(tmp_path):
    assert EngineConfig(models_dir=tmp_path).paths().extra_model_dirs == {}


# --- aliases ---------------------------------------------------------------------------------

ALIASES = """\
checkpoints:
  v1-5-pruned-emaonly-fp16.safetensors: mine.safetensors
  sd_xl_base_1.0.safetensors: tiny-builtin.safetensors
  gone.safetensors: not-there.safetensors
vae:
  vae-ft-mse-840000-ema-pruned.safetensors: sub/my-vae.safetensors
"""


@pytest.fixture
def aliased(tmp_path) -> Paths:
    touch(tmp_path / "models/checkpoints/mine.safetensors", b"mine")
    touch(tmp_path / "models/vae/sub/my-vae.safetensors", b"vae")
    write_yaml(tmp_path / "models/aliases.yaml", ALIASES)
    return Paths(tmp_path / "models")


def test_aliases_file_is_read_per_kind(aliased):
    assert read_model_aliases(aliased.models_dir / "aliases.yaml")["vae"] == {
        "vae-ft-mse-840000-ema-pruned.safetensors": "sub/my-vae.safetensors"}
    assert aliased.aliases("loras") == {}


def test_aliases_are_offered_as_choices_when_their_target_exists(aliased):
    files = ModelFiles("checkpoints", (".safetensors",), builtin=["tiny-builtin.safetensors"])
    assert files.choices(aliased) == ["mine.safetensors", "tiny-builtin.safetensors",
                                      "sd_xl_base_1.0.safetensors", "v1-5-pruned-emaonly-fp16.safetensors"]
    assert ModelFiles("vae", (".safetensors",)).choices(aliased) == [
        "sub/my-vae.safetensors", "vae-ft-mse-840000-ema-pruned.safetensors"]


def test_an_alias_resolves_to_its_target_file(aliased):
    assert aliased.model_path("checkpoints", "v1-5-pruned-emaonly-fp16.safetensors").read_bytes() == b"mine"
    assert aliased.model_path("vae", "vae-ft-mse-840000-ema-pruned.safetensors").read_bytes() == b"vae"
    assert aliased.resolve_model_name("checkpoints", "sd_xl_base_1.0.safetensors") == "tiny-builtin.safetensors"
    assert aliased.resolve_model_name("checkpoints", "unaliased.safetensors") == "unaliased.safetensors"


def test_a_file_under_the_requested_name_wins_over_its_alias(aliased):
    touch(aliased.models_dir / "checkpoints/v1-5-pruned-emaonly-fp16.safetensors", b"real")
    assert aliased.model_path("checkpoints", "v1-5-pruned-emaonly-fp16.safetensors").read_bytes() == b"real"
    choices = ModelFiles("checkpoints", (".safetensors",)).choices(aliased)
    assert choices.count("v1-5-pruned-emaonly-fp16.safetensors") == 1


def test_an_alias_to_a_missing_file_is_not_offered_and_says_what_is_missing(aliased):
    assert "gone.safetensors" not in ModelFiles("checkpoints", (".safetensors",)).choices(aliased)
    with pytest.raises(FileNotFoundError, match=r"'not-there.safetensors' \(what 'gone.safetensors' is an alias"):
        aliased.model_path("checkpoints", "gone.safetensors")


def test_an_edited_aliases_file_counts_at_once(aliased):
    write_yaml(aliased.models_dir / "aliases.yaml", "checkpoints:\n  other.safetensors: mine.safetensors\n")
    assert ModelFiles("checkpoints", (".safetensors",)).choices(aliased) == ["mine.safetensors", "other.safetensors"]


def test_aliases_given_in_code_add_to_the_file(aliased):
    aliased.model_aliases = {"checkpoints": {"v1-5-pruned-emaonly-fp16.safetensors": "other.safetensors",
                                             "dreamshaper_8.safetensors": "mine.safetensors"}}
    assert aliased.aliases("checkpoints")["v1-5-pruned-emaonly-fp16.safetensors"] == "other.safetensors"
    assert aliased.model_path("checkpoints", "dreamshaper_8.safetensors").read_bytes() == b"mine"


def test_aliases_reach_models_in_extra_folders(tmp_path):
    touch(tmp_path / "webui/models/Stable-diffusion/dreamshaper_8.safetensors", b"dream")
    write_yaml(tmp_path / "models/aliases.yaml",
               "checkpoints:\n  v1-5-pruned-emaonly.safetensors: dreamshaper_8.safetensors\n")
    paths = Paths(tmp_path / "models", extra_model_dirs={"checkpoints": [tmp_path / "webui/models/Stable-diffusion"]})
    assert "v1-5-pruned-emaonly.safetensors" in ModelFiles("checkpoints").choices(paths)
    assert paths.model_path("checkpoints", "v1-5-pruned-emaonly.safetensors").read_bytes() == b"dream"


def test_an_alias_target_cannot_leave_the_model_folders(tmp_path):
    touch(tmp_path / "secret.safetensors")
    write_yaml(tmp_path / "models/aliases.yaml", "checkpoints:\n  a.safetensors: ../secret.safetensors\n")
    with pytest.raises(UnsafePathError):
        Paths(tmp_path / "models").model_path("checkpoints", "a.safetensors")
    write_yaml(tmp_path / "models/aliases.yaml", f"checkpoints:\n  a.safetensors: {tmp_path / 'secret.safetensors'}\n")
    with pytest.raises(ModelPathsError, match="inside the checkpoints folders"):
        Paths(tmp_path / "models").model_path("checkpoints", "a.safetensors")


@pytest.mark.parametrize("text, expected", [
    ("- a\n", "expected kinds"),
    ("checkpoints: mine.safetensors\n", "'checkpoints' must map requested names"),
    ("checkpoints:\n  a.safetensors: [b]\n", "must map a file name to a file name"),
])
def test_a_malformed_aliases_file_is_reported(tmp_path, text, expected):
    write_yaml(tmp_path / "aliases.yaml", text)
    with pytest.raises(ModelPathsError, match=expected):
        read_model_aliases(tmp_path / "aliases.yaml")


def test_no_aliases_file_means_no_aliases(tmp_path):
    assert Paths(tmp_path).aliases("checkpoints") == {}


# --- the CLI ---------------------------------------------------------------------------------

@pytest.mark.slow  # launches `python -m engine`
def test_cli_offers_extra_folders_and_aliases_as_checkpoint_choices(tmp_path):
    touch(tmp_path / "webui/models/Stable-diffusion/dreamshaper_8.safetensors")
    extra = write_yaml(tmp_path / "extra.yaml", "a111:\n  base_path: webui\n  checkpoints: models/Stable-diffusion\n")
    write_yaml(tmp_path / "models/aliases.yaml",
               "checkpoints:\n  v1-5-pruned-emaonly.safetensors: dreamshaper_8.safetensors\n")
    result = subprocess.run([sys.executable, "-m", "engine", "nodes", "--json", "--models-dir", tmp_path / "models",
                             "--extra-model-paths", extra], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    choices = json.loads(result.stdout)["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    assert "dreamshaper_8.safetensors" in choices and "v1-5-pruned-emaonly.safetensors" in choices


def test_a_symlink_out_of_a_model_folder_is_neither_listed_nor_loaded(tmp_path):
    from engine.paths import Paths, UnsafePathError

    outside = tmp_path / "elsewhere" / "real.safetensors"
    outside.parent.mkdir()
    outside.write_bytes(b"x")
    folder = tmp_path / "models" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "inside.safetensors").write_bytes(b"y")
    (folder / "link-in.safetensors").symlink_to(folder / "inside.safetensors")
    (folder / "link-out.safetensors").symlink_to(outside)
    paths = Paths(models_dir=tmp_path / "models")
    assert paths.list_models("checkpoints") == ["inside.safetensors", "link-in.safetensors"]
    assert paths.model_path("checkpoints", "link-in.safetensors").name == "inside.safetensors"
    with pytest.raises(UnsafePathError):
        paths.model_path("checkpoints", "link-out.safetensors")
