"""The model matrix: Hugging Face models built from configs with library defaults (no attention or cache overrides,
random weights, nothing downloaded) and the in-repo vision models. `TINY` builders are for CI; `FULL` sizes (the
published configurations' defaults) for the slow suite. Each builder returns (model.eval(), inputs)."""
from __future__ import annotations

import torch

SEQ, VOCAB = 8, 99


def _t():
    import transformers
    return transformers


def _ids(batch=1, seq=SEQ, lo=3, vocab=VOCAB):
    return torch.randint(lo, vocab, (batch, seq))


def _text(cls_name, cfg_name, tiny, inputs=None, full_kw=None):
    """full: the config class's defaults (the published base size), or full_kw where those defaults are a
    multi-billion-parameter model (DeBERTa-v2's xxlarge)."""
    def build(full=False):
        t = _t()
        cfg = getattr(t, cfg_name)(**((full_kw or {}) if full else tiny))
        model = getattr(t, cls_name)(cfg).eval()
        vocab = cfg.vocab_size if full else tiny.get("vocab_size", VOCAB)
        return model, (inputs() if inputs else (_ids(vocab=min(vocab, VOCAB)),))
    return build


_BERTISH = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=VOCAB)


def _t5(encoder_only):
    def build(full=False):
        t = _t()
        cfg = t.T5Config(**({} if full else dict(d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2,
                                                 vocab_size=VOCAB, decoder_start_token_id=0)))
        if encoder_only:
            return t.T5EncoderModel(cfg).eval(), (_ids(),)
        return _WithDecoderInputs(t.T5Model(cfg).eval()).eval(), (_ids(), _ids(seq=4))
    return build


class _WithDecoderInputs(torch.nn.Module):
    """An encoder-decoder called with (input_ids, decoder_input_ids), as the SDK's T5 tutorials wrap it."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, decoder_input_ids):
        return self.model(input_ids=input_ids, decoder_input_ids=decoder_input_ids)


def _vision(cls_name, cfg_name, tiny, image):
    def build(full=False):
        t = _t()
        cfg = getattr(t, cfg_name)(**({} if full else tiny))
        size = cfg.image_size if full and hasattr(cfg, "image_size") else image
        size = size[0] if isinstance(size, (list, tuple)) else size
        return getattr(t, cls_name)(cfg).eval(), (torch.randn(1, 3, size, size),)
    return build


def _clip_text(full=False):
    t = _t()
    cfg = t.CLIPTextConfig(**({} if full else dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                                    num_attention_heads=2, vocab_size=VOCAB, max_position_embeddings=16)))
    return t.CLIPTextModel(cfg).eval(), (_ids(vocab=min(cfg.vocab_size, VOCAB)),)


def _whisper_encoder(full=False):
    t = _t()
    cfg = t.WhisperConfig(**({} if full else dict(d_model=32, encoder_layers=2, encoder_attention_heads=2,
                                                   encoder_ffn_dim=64, decoder_layers=1, decoder_attention_heads=2,
                                                   decoder_ffn_dim=64, num_mel_bins=16, max_source_positions=16,
                                                   vocab_size=VOCAB, pad_token_id=0, bos_token_id=0,
                                                   eos_token_id=0, decoder_start_token_id=0)))
    model = t.WhisperModel(cfg).get_encoder().eval()
    return model, (torch.randn(1, cfg.num_mel_bins, 2 * cfg.max_source_positions),)


def _wav2vec2(full=False):
    t = _t()
    cfg = t.Wav2Vec2Config(**({} if full else dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                                    intermediate_size=64, conv_dim=(16, 16), conv_stride=(5, 2),
                                                    conv_kernel=(10, 3), num_conv_pos_embeddings=16,
                                                    num_conv_pos_embedding_groups=2, vocab_size=VOCAB)))
    return t.Wav2Vec2Model(cfg).eval(), (torch.randn(1, 400 if not full else 16000),)


def _mistral(full=False):
    t = _t()
    # full: a ~150M-parameter configuration of the architecture (the class defaults are Mistral-7B)
    big = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=4,
               intermediate_size=2048, vocab_size=32000)
    cfg = t.MistralConfig(**(big if full else dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                                   num_key_value_heads=2, intermediate_size=64, vocab_size=VOCAB,
                                                   max_position_embeddings=64, bos_token_id=0, eos_token_id=0)))
    return t.MistralForCausalLM(cfg).eval(), (_ids(lo=0),)


HF = {
    "distilbert": _text("DistilBertModel", "DistilBertConfig", dict(dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                                                                   vocab_size=VOCAB)),
    "albert": _text("AlbertModel", "AlbertConfig", dict(_BERTISH, embedding_size=16)),
    "electra": _text("ElectraModel", "ElectraConfig", dict(_BERTISH, embedding_size=16)),
    "deberta_v2": _text("DebertaV2Model", "DebertaV2Config", dict(_BERTISH, max_relative_positions=16),
                        full_kw=dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                     intermediate_size=3072, relative_attention=True, position_buckets=256,
                                     pos_att_type=["p2c", "c2p"], norm_rel_ebd="layer_norm", share_att_key=True)),
    "xlm_roberta": _text("XLMRobertaModel", "XLMRobertaConfig", _BERTISH),
    "t5_encoder": _t5(True),
    "t5": _t5(False),
    "mistral": _mistral,
    "vit": _vision("ViTModel", "ViTConfig", dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                                  intermediate_size=64, image_size=32, patch_size=8), 32),
    "clip_vision": _vision("CLIPVisionModel", "CLIPVisionConfig", dict(hidden_size=32, intermediate_size=64,
                                                                       num_hidden_layers=2, num_attention_heads=2,
                                                                       image_size=32, patch_size=8), 32),
    "clip_text": _clip_text,
    "swin": _vision("SwinModel", "SwinConfig", dict(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1],
                                                    num_heads=[2, 2], window_size=4), 32),
    "convnext": _vision("ConvNextModel", "ConvNextConfig", dict(hidden_sizes=[16, 32], depths=[1, 1],
                                                                num_stages=2), 32),
    "whisper_encoder": _whisper_encoder,
    "wav2vec2": _wav2vec2,
}
