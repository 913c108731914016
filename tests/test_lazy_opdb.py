"""PyTorch's op_db samples on the lazy device vs CPU eager (float32 forward). The fast subset runs in CI and must
all pass; the full database runs with -m slow and must reach 90% of the ops with float32 CPU support."""
import pytest

from lazy_helpers import dev  # noqa: F401
import lazy_opdb


def test_fast_subset(dev):
    res = lazy_opdb.run(lazy_opdb.FAST, n_samples=2)
    assert set(res) == set(lazy_opdb.FAST)
    failed = {k: d for k, (r, d) in res.items() if r == "fail"}
    assert not failed, failed
    assert sum(r == "pass" for r, _ in res.values()) >= len(lazy_opdb.FAST) - 2   # explicit skips only


@pytest.mark.slow
def test_full_op_db(dev):
    res = lazy_opdb.run(None, n_samples=4)
    print(lazy_opdb.summary(res))
    passed = sum(r == "pass" for r, _ in res.values())
    failed = sum(r == "fail" for r, _ in res.values())
    assert passed / (passed + failed) >= 0.90, lazy_opdb.summary(res)
