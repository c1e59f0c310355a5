//! Inputs the embedding benches share, so their rows measure the same text.

const WORDS: &[&str] = &[
    "model", "cache", "content", "address", "the", "quick", "network", "vector", "fast",
    "sentence", "storage", "peer", "layer", "token", "batch", "length", "of", "and", "runs", "on",
];

/// 256 sentences of 2 to 48 words (typical sentence lengths), deterministic.
pub fn mixed_sentences() -> Vec<String> {
    let mut state = 0x2545_f491_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..256)
        .map(|_| {
            let n = 2 + (next() % 47) as usize;
            (0..n)
                .map(|_| WORDS[(next() % WORDS.len() as u64) as usize])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}
