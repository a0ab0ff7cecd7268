//! What MiniLM's weight file does not say: the attention heads, the layer-norm
//! epsilon and sentence-transformers' truncation length. Shared by the burn
//! ([`tensor`](super::tensor)) and CPU ([`cpu`](super::cpu)) forms; imports nothing of them.

/// sentence-transformers' `max_seq_length` for all-MiniLM-L6-v2.
pub const DEFAULT_MAX_TOKENS: usize = 256;

/// What the weight file does not say about the architecture.
#[derive(Clone, Copy, Debug)]
pub struct BertConfig {
    /// Attention heads (MiniLM: 12).
    pub heads: usize,
    /// Layer-norm epsilon (BERT: 1e-12).
    pub layer_norm_eps: f64,
}

impl BertConfig {
    /// all-MiniLM-L6-v2's `config.json`.
    pub const MINILM: BertConfig = BertConfig { heads: 12, layer_norm_eps: 1e-12 };
}
