"""Every notebook runs top to bottom in quick mode; the committed ones show a full run."""


import nbformat
import pytest

from maskdetect.core import constants
from maskdetect.data.layout import prepare_data

pytestmark = pytest.mark.slow  # runs every notebook

FOLDER = constants.PROJECT_ROOT / "notebooks"
NOTEBOOKS = sorted(FOLDER.glob("nb*.ipynb"))  # published: they hold a full run


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_holds_a_clean_full_run(path):
    notebook = nbformat.read(path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert any("parameters" in c.metadata.get("tags", []) for c in code), "needs a papermill parameters cell"
    outputs = [o for c in code for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any({"image/png", "image/jpeg"} & set(o.get("data", {})) for o in outputs), "a committed notebook shows its plots"
    assert path.stat().st_size <= 1_500_000, "keep a notebook's outputs small: smaller figures, or JPEG for photos"
    assert all(c.execution_count for c in code if c.source.strip()), "run top to bottom"


@pytest.fixture(scope="module")
def prepared_data(observations, tmp_path_factory):
    """A materialised split (observations, realfaces-train, maskwear-train) outside the checkout, for the notebooks' kernels."""
    from maskdetect.data import maskwear, realfaces

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MASKDETECT_DATA_DIR", str(tmp_path_factory.mktemp("data")))
        patch.setenv("MASKDETECT_DATA_SOURCE", str(observations))
        prepare_data(progress=False)
        realfaces.prepare_realfaces(progress=False)
        maskwear.prepare_maskwear(progress=False)
        yield


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_quick_mode(path, tmp_path, prepared_data):
    import papermill

    papermill.execute_notebook(
        str(path),
        str(tmp_path / path.name),
        parameters={"quick": True},
        cwd=str(path.parent),
        progress_bar=False,
        kernel_name="python3",
    )
