from tests.operations.helpers import env, shared_versions  # noqa: F401  (fixtures)
