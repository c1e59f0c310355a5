//! The embedding skill against transformers' reference, through the library.

#![allow(clippy::unwrap_used)]

use ipfs_accelerate::{BackendKind, EmbedOptions, TextEmbedder};
use ipfs_accelerate_tests::{
    as_strs, assert_cosines, assert_rows_close, bert_reference, fixture_ref, loader,
};

#[test]
fn bert_fixture_sorted_and_unsorted_agree_with_reference() {
    let home = tempfile::tempdir().unwrap();
    let loader = loader(home.path());
    let embedder = TextEmbedder::load(&loader, &fixture_ref("bert"), BackendKind::Cpu).unwrap();
    assert_eq!(embedder.backend(), BackendKind::Cpu);
    assert_eq!(embedder.max_seq_length(), 64);
    let (texts, expected) = bert_reference();
    for options in [
        EmbedOptions {
            batch_size: 32,
            sort_by_length: true,
        },
        EmbedOptions {
            batch_size: 2,
            sort_by_length: false,
        },
        EmbedOptions {
            batch_size: 1,
            sort_by_length: true,
        },
    ] {
        let got = embedder.embed_with(&as_strs(&texts), options).unwrap();
        let key = format!("{options:?}");
        assert_cosines(&key, &got, &expected, 0.99999);
        assert_rows_close(&key, &got, &expected, 1e-5);
    }
    assert!(embedder.embed(&[]).is_err());
}
