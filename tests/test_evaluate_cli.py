"""``temzoo-cli evaluate --json``: an existing file is refused before any work, kept unless --overwrite."""

from click.testing import CliRunner
from temzoo_cli.main import cli


def test_existing_json_is_refused_before_the_model_or_data_load(tmp_path):
    report = tmp_path / "metrics.json"
    report.write_text('{"keep": true}\n')
    result = CliRunner().invoke(cli, ["evaluate", "--model", str(tmp_path / "absent.keras"), "--dataset",
                                      "synthetic_tem/au_np", "--json", str(report)])
    assert result.exit_code == 1
    assert f"{report}: the output file exists; pass --overwrite" in result.output
    assert report.read_text() == '{"keep": true}\n'
    # with --overwrite the file is no obstacle: the run goes on (and here fails on the missing model)
    result = CliRunner().invoke(cli, ["evaluate", "--model", str(tmp_path / "absent.keras"), "--dataset",
                                      "synthetic_tem/au_np", "--json", str(report), "--overwrite"])
    assert result.exit_code == 1 and "absent.keras: no such model file" in result.output
    assert report.read_text() == '{"keep": true}\n'


def test_json_in_an_unusable_folder_is_refused_before_work(tmp_path):
    (tmp_path / "afile").write_text("x")
    result = CliRunner().invoke(cli, ["evaluate", "--model", str(tmp_path / "absent.keras"), "--dataset",
                                      "synthetic_tem/au_np", "--json", str(tmp_path / "afile" / "m.json")])
    assert result.exit_code == 1 and "is a file, not a folder" in result.output
