"""crmbot's tests: a package, so tests and benchmarks import shared code as `tests.support`."""
