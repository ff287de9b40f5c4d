from tests.gallery.helpers import env, shared_versions  # noqa: F401  (fixtures)
