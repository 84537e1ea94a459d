# session fixtures shared with tests/export
from tests.export.conftest import (  # noqa: F401
    tiny_det_data,
    tiny_det_export,
    tiny_det_run,
    tiny_exports,
    tiny_images,
    tiny_run,
)
