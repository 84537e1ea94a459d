from tests.diagnose.conftest import run_dir  # noqa: F401 -- one shared fit for doctor and report tests
