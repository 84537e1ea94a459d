from tests.export.conftest import tiny_exports, tiny_images, tiny_run  # noqa: F401  (session fixtures)
