"""Device tensors answer the storage-identity questions libraries ask before saving (tied weights): views and tied
parameters share a storage, distinct allocations do not, and `data_ptr()` offsets are CPU eager's. Without it
transformers' save_pretrained of a model on the device failed ("invalid python storage")."""
import pytest
import torch

from lazy_helpers import dev  # noqa: F401  (fixture)

transformers = pytest.importorskip("transformers")


def test_views_share_storage_with_eager_offsets(dev):
    c = torch.arange(24.).reshape(4, 6)
    t = c.to(dev)
    other = torch.ones(24).to(dev)
    views = [lambda x: x, lambda x: x[1:], lambda x: x[:, 2], lambda x: x.view(-1)[-1], lambda x: x.t()[3],
             lambda x: x[2:, 1:4].transpose(0, 1)]
    for v in views:
        assert v(t).data_ptr() - t.data_ptr() == v(c).data_ptr() - c.data_ptr()
        assert v(t).untyped_storage().data_ptr() == t.untyped_storage().data_ptr()
    assert t.untyped_storage().nbytes() == c.untyped_storage().nbytes()
    s, o = t.untyped_storage(), other.untyped_storage()
    # distinct allocations: different identities and address ranges that do not overlap
    assert s.data_ptr() != o.data_ptr()
    assert s.data_ptr() + s.nbytes() <= o.data_ptr() or o.data_ptr() + o.nbytes() <= s.data_ptr()
    with pytest.raises(AttributeError, match="no host data"):
        t.untyped_storage().tolist()


def _tiny_mlm():
    from transformers import BertConfig, BertForMaskedLM
    torch.manual_seed(0)
    return BertForMaskedLM(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=32))


@pytest.mark.parametrize("safe", [True, False])
def test_save_pretrained_of_device_model(dev, tmp_path, safe):
    from transformers import BertForMaskedLM
    cpu = _tiny_mlm()
    cpu.save_pretrained(tmp_path / "cpu", safe_serialization=safe)
    m = _tiny_mlm().to(dev)     # tied decoder and word embeddings: saved once, as from CPU
    m.save_pretrained(tmp_path / "dev", safe_serialization=safe)
    want = BertForMaskedLM.from_pretrained(tmp_path / "cpu").state_dict()
    got = BertForMaskedLM.from_pretrained(tmp_path / "dev").state_dict()
    assert want.keys() == got.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=0)
    assert sorted(p.name for p in (tmp_path / "dev").iterdir()) == sorted(p.name for p in (tmp_path / "cpu").iterdir())
